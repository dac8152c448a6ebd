"""The run's persistent Optuna storage: one trial per candidate, as it ended, for optuna-dashboard.

Sampling runs on the generator's in-memory study; :class:`StorageMirror` writes
each finished :class:`~gensynth.search.record.CandidateRecord` into the run's
storage (SQLite by default, any Optuna RDB URL, or a journal file) so that
optuna-dashboard and ``optuna.load_study`` read the run as it happened:

- Trial number = candidate number: records are written in number order, and a
  number still being measured holds the later ones back.
- States: evaluated → COMPLETE with its objective values. Rejected → PRUNED: a
  constraint stopped it, as a pruner would; it is not an error. Duplicate →
  PRUNED with ``duplicate_of``: nothing was measured, and a COMPLETE copy would
  count one architecture twice in the history and the importances. Failed →
  FAIL with its ``reason``; a number lost in flight by a killed run → FAIL with
  :data:`LOST_REASON`. Only COMPLETE trials have values, so no placeholder is
  ever written.
- Constraints (a violation >= 0; 0 is satisfied) are written twice, because
  Optuna 5 and optuna-dashboard (0.21, and its main branch) read different
  keys: by name through ``create_trial(constraints=...)``, which is what
  ``FrozenTrial.constraints`` and the samplers read, and as the positional list
  in the ``"constraints"`` system attribute, the only form the dashboard reads
  to grey out infeasible trials. Optuna reads that list as well, so
  ``FrozenTrial.constraints`` also holds the values under "0", "1", ...
- User attributes: ``candidate``, ``hash``, ``status``, ``feasible``, each
  measurement by metric name, and ``reason``, ``rejected_at``, ``score``,
  ``duplicate_of`` where the record has them.

Trials carry the time they were written (records keep durations, no clock).
"""
from __future__ import annotations

import json
import os
import warnings
from importlib.metadata import version
from typing import Any, Callable, Iterable

import optuna
import sqlalchemy
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState, create_trial

from ..errors import UserError
from .record import CandidateRecord, Status

LOST_REASON = "lost in flight: the run was stopped while it was measured"

JOURNAL_PREFIX = "journal://"
JOURNAL_SUFFIX = ".log"

_STATES = {
    Status.EVALUATED: TrialState.COMPLETE,
    Status.REJECTED: TrialState.PRUNED,
    Status.DUPLICATE: TrialState.PRUNED,
    Status.FAILED: TrialState.FAIL,
}

# optuna-dashboard's CONSTRAINTS_KEY (Optuna's list format before 5.0).
_DASHBOARD_CONSTRAINTS = "constraints"

# The driver argument that bounds a connection attempt: an unreachable host
# would otherwise hold the run's start for minutes of TCP retries.
_CONNECT_TIMEOUT_ARGS = {
    "psycopg2": "connect_timeout", "psycopg": "connect_timeout", "pg8000": "timeout",
    "pymysql": "connect_timeout", "mysqldb": "connect_timeout", "mysqlconnector": "connection_timeout",
}
_CONNECT_TIMEOUT_S = 5


def open_storage(url: str) -> BaseStorage:
    """Open the Optuna storage ``url``, or raise a one-line :class:`UserError` naming it and why.

    ``url`` is an Optuna RDB URL (``sqlite:///path/study.db``, ``postgresql://...``)
    or a journal file: a path ending in ``.log`` (the same string then opens it
    in ``optuna-dashboard PATH``) or ``journal://PATH`` for any file name
    (``journal:///abs/run.log``). A journal file is created if missing; its
    folder must exist, as a SQLite file's must.
    """
    if url.startswith(JOURNAL_PREFIX) or ("://" not in url and url.endswith(JOURNAL_SUFFIX)):
        return _open_journal(url, url.removeprefix(JOURNAL_PREFIX))
    if "://" not in url:
        raise UserError(
            f"storage {url!r} is not an Optuna storage: give a database URL (sqlite:///path/study.db, postgresql://...), "
            f"a journal file path ending in {JOURNAL_SUFFIX}, or {JOURNAL_PREFIX}PATH"
        )
    return _open_rdb(url)


def _open_journal(url: str, path: str) -> JournalStorage:
    if not path:
        raise UserError(f"storage {url!r}: the journal file has no path")
    path = os.path.abspath(path)
    try:
        if os.path.isfile(path):
            with open(path, "rb") as log:  # Optuna forgives a bad last line until it appends after it: check every line now
                for number, line in enumerate(log, start=1):  # a last line without its newline is torn (a kill): Optuna skips it
                    if line.endswith(b"\n") and line.strip() and not isinstance(json.loads(line), dict):
                        raise ValueError(f"line {number} is not a journal entry")
        storage = JournalStorage(JournalFileBackend(path))
        storage.get_all_studies()
        return storage
    except OSError as err:
        raise UserError(f"storage {url!r}: cannot open the journal file {path} ({err.strerror or err})") from None
    except (ValueError, KeyError) as err:  # a file that is not an Optuna journal
        raise UserError(f"storage {url!r}: {path} is not an Optuna journal file ({type(err).__name__}: {err})") from None


def _open_rdb(url: str) -> RDBStorage:
    shown = url
    try:
        parsed = sqlalchemy.engine.make_url(url)
        shown = parsed.render_as_string(hide_password=True)
        timeout_arg = _CONNECT_TIMEOUT_ARGS.get(parsed.get_driver_name())
        connect_args = {timeout_arg: _CONNECT_TIMEOUT_S} if timeout_arg and timeout_arg not in parsed.query else {}
        return RDBStorage(url, engine_kwargs={"connect_args": connect_args})
    except ImportError as err:  # Optuna wraps the driver's ModuleNotFoundError
        raise UserError(f"storage {shown!r}: its database driver is not installed ({err.__cause__ or err})") from None
    except (sqlalchemy.exc.SQLAlchemyError, RuntimeError, ValueError) as err:
        cause = getattr(err, "orig", None) or err  # the DBAPI's own message, without SQLAlchemy's SQL and links
        first_line = (str(cause).strip().splitlines() or [type(err).__name__])[0]
        raise UserError(f"storage {shown!r}: cannot open it ({first_line})") from None


class StorageMirror:
    """Writes finished candidates into an Optuna study, each as the trial numbered like the candidate.

    ``distributions`` turns a genome into the Optuna distributions of its genes
    (the space's full choices: the dashboard's slice and importance plots read
    them). ``objective`` names the objective in the study's user attributes.
    """

    def __init__(
        self,
        storage: BaseStorage | str,
        study_name: str,
        directions: list[str],
        metric_names: list[str],
        distributions: Callable[[dict[str, Any]], dict[str, BaseDistribution]],
        objective: str = "",
    ):
        self.storage = open_storage(storage) if isinstance(storage, str) else storage
        self.study = optuna.create_study(storage=self.storage, study_name=study_name, directions=directions, load_if_exists=True)
        stored = [d.name.lower() for d in self.study.directions]
        if stored != list(directions):
            raise UserError(
                f"the storage's study '{study_name}' optimizes {stored}, this run {list(directions)}: "
                "give the run another name or storage"
            )
        with warnings.catch_warnings():  # experimental since Optuna 3.2, and what the dashboard reads
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study.set_metric_names(list(metric_names))
        self.study.set_user_attr("gensynth_version", version("gensynth"))
        if objective:
            self.study.set_user_attr("objective", objective)
        self._distributions = distributions
        self._queue: dict[int, CandidateRecord | None] = {}  # None: lost in flight
        self._next = len(self.study.get_trials(deepcopy=False))
        self._unsure = False  # a write was interrupted (Ctrl-C, SIGTERM): whether it landed is for the storage to say

    def record(self, rec: CandidateRecord) -> None:
        """Queue a finished candidate; one the storage already holds is ignored, so a resume may record again."""
        if rec.number >= self._next:
            self._queue[rec.number] = rec

    def flush(self, stop: Callable[[], bool] = lambda: False) -> None:
        """Write queued candidates in number order, up to the first number not finished yet.

        ``stop`` is asked before each write (~65 ms on SQLite); when it says True
        the rest waits for the next call, so the loop can write while a probe runs.
        """
        if self._unsure:  # each write is one transaction or one journal entry: it landed whole or not at all
            self._next = len(self.study.get_trials(deepcopy=False))
            self._queue = {number: rec for number, rec in self._queue.items() if number >= self._next}
            self._unsure = False
        while self._next in self._queue and not stop():
            self._unsure = True
            self.study.add_trial(self._trial(self._next, self._queue[self._next]))
            self._unsure = False
            del self._queue[self._next]
            self._next += 1

    def catch_up(self, records: Iterable[CandidateRecord]) -> None:
        """On resume: check that the study holds this run's trials, then write those it lacks.

        A kill between the fsynced ``candidates.jsonl`` line and the mirror
        leaves the storage behind the records. Numbers below the highest record
        that have none were lost in flight: they become FAIL trials, so that
        later trial numbers still equal candidate numbers.
        """
        by_number = {rec.number: rec for rec in records}
        self._check_stored(by_number)
        for number in range(self._next, max(by_number, default=-1) + 1):
            self._queue[number] = by_number.get(number) or self._queue.get(number)
        self.flush()

    def close(self) -> None:
        """Write everything that can be written (numbers after a gap wait for :meth:`catch_up`)."""
        self.flush()

    def _check_stored(self, by_number: dict[int, CandidateRecord]) -> None:
        """A stored trial whose hash is not the run's candidate of that number belongs to another run."""
        for trial in self.study.get_trials(deepcopy=False):
            stored = trial.user_attrs.get("hash")
            rec = by_number.get(trial.number)
            if stored is not None and (rec is None or rec.hash != stored):
                mine = f"is {rec.hash}" if rec else "has no record"
                raise UserError(
                    f"the storage's study '{self.study.study_name}' holds trial {trial.number} for architecture {stored}, "
                    f"but this run's candidate {trial.number} {mine}: give the run another name or storage"
                )

    def _trial(self, number: int, rec: CandidateRecord | None) -> FrozenTrial:
        if rec is None:
            return create_trial(state=TrialState.FAIL, user_attrs={"candidate": number, "reason": LOST_REASON})
        return create_trial(
            state=_STATES[rec.status],
            values=rec.values if rec.status is Status.EVALUATED else None,
            params=rec.genome,
            distributions=self._distributions(rec.genome),
            user_attrs=_user_attrs(rec),
            system_attrs={_DASHBOARD_CONSTRAINTS: list(rec.violations.values())},
            constraints=rec.violations,
        )


def _user_attrs(rec: CandidateRecord) -> dict[str, Any]:
    """Measurements by metric name, then what the record says of the candidate (those win a name clash)."""
    optional = {"reason": rec.reason, "rejected_at": rec.rejected_at, "score": rec.score, "duplicate_of": rec.duplicate_of}
    return {
        **rec.measurements,
        "candidate": rec.number, "hash": rec.hash, "status": rec.status.value, "feasible": rec.feasible,
        **{key: value for key, value in optional.items() if value not in (None, "")},
    }
