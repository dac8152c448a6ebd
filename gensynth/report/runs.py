"""Reading run directories without writing them: the resolved config, and one line of status per run.

Everything here only reads (``gensynth runs`` and the report may look at a
run while its search writes it); the one lock probe takes a shared ``flock``
and drops it at once.
"""
from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from ..errors import UserError
from ..ir.serialize import read_data_file
from ..search.config import SearchConfig, from_mapping, upgrade_stored
from ..search.store import RunStore

FINISHED, IN_PROGRESS, CAPPED, STOPPED, DAMAGED = (
    "finished", "in progress", "stopped at the proposal cap", "stopped before the budget", "damaged")


def read_config(store: RunStore) -> SearchConfig:
    """The run's ``config.yaml``, every key and type checked but no plugin looked up (it may not be installed here)."""
    if not store.config_path.is_file():
        raise UserError(f"{store.root}: not a run directory (no config.yaml)")
    return from_mapping(SearchConfig, upgrade_stored(read_data_file(store.config_path) or {}), str(store.config_path))


def lock_held(root: Path) -> bool:
    """Whether a search holds ``<root>/.lock`` now: a non-blocking shared ``flock``, released at once."""
    try:
        fd = os.open(Path(root) / ".lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the shared lock, if taken


@dataclass(frozen=True)
class RunSummary:
    """One run at a glance: ``evaluated`` counts candidates that entered evaluation (what the budget counts)."""

    path: Path
    status: str
    budget: int | None
    evaluated: int
    proposals: int
    best_score: float | None
    last_change: datetime

    COLUMNS: ClassVar[tuple[str, ...]] = ("run", "status", "budget", "evaluated", "proposals", "best_score", "last_change")

    def as_dict(self) -> dict[str, Any]:
        """JSON- and CSV-ready, keyed by ``COLUMNS``: the path as text, the time in ISO 8601 with its offset."""
        return dict(zip(self.COLUMNS, (str(self.path), self.status, self.budget, self.evaluated, self.proposals, self.best_score,
                                       self.last_change.isoformat(timespec="seconds"))))


def summarize(root: Path) -> RunSummary:
    """Status, budget, best feasible score and last change of the run in ``root``."""
    store = RunStore(Path(root))
    changed = store.candidates_path if store.candidates_path.is_file() else store.config_path
    last_change = datetime.fromtimestamp(changed.stat().st_mtime, timezone.utc).astimezone()
    try:
        config = read_config(store)
        records = store.records()
    except UserError:  # one damaged run does not hide the others
        return RunSummary(store.root, DAMAGED, None, 0, 0, None, last_change)
    evaluated = sum(r.inquired for r in records)
    scores = [r.score for r in records if r.feasible and r.score is not None]
    if lock_held(store.root):
        status = IN_PROGRESS
    elif evaluated >= config.budget:
        status = FINISHED
    elif len(records) >= config.proposal_cap:
        status = CAPPED
    else:
        status = STOPPED
    return RunSummary(store.root, status, config.budget, evaluated, len(records), max(scores, default=None), last_change)


def list_runs(folder: Path) -> list[RunSummary]:
    """Every run directory directly in ``folder`` (or ``folder`` itself when it is one), by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder")
    if RunStore(folder).config_path.is_file():
        return [summarize(folder)]
    return [summarize(p) for p in sorted(folder.iterdir()) if RunStore(p).config_path.is_file()]
