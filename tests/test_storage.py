"""The run's Optuna storage, read back by plain Optuna and by optuna-dashboard's JSON API.

Every candidate status is mirrored as what it was (numbers, states, metric
names, user attributes, constraints) and no stored number is a placeholder;
bad storage URLs are one-line user errors.
"""
from __future__ import annotations

import importlib.util
import json
import math
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from gensynth.errors import UserError
from gensynth.search.mirror import LOST_REASON, StorageMirror, open_storage
from gensynth.search.record import CandidateRecord, Status

GENES = {"depth": [1, 2, 3], "width": [8, 16, 32]}
OK = {"columnar": 0.0, "max_params": 0.0}
MEASURED = {"params": 12_000.0, "macs": 3.4e6, "latency_ms": 1.5}
STUDY = "run-a"
PLACEHOLDER = 1e8  # the old mirror wrote -1e9 (1e18 in Pareto runs) for unmeasured candidates

# (directions, metric names, the values an evaluated candidate has)
SINGLE = (["maximize"], ["score"], lambda accuracy, macs, score: [score])
PARETO = (["maximize", "minimize"], ["accuracy", "macs"], lambda accuracy, macs, score: [accuracy, macs])


def distributions(genome: dict[str, Any]) -> dict[str, BaseDistribution]:
    return {name: CategoricalDistribution(GENES[name]) for name in genome}


def make_records(objective: tuple = SINGLE) -> dict[int, CandidateRecord]:
    """One candidate of each status; 5 is evaluated but breaks a constraint checked after training."""
    values = objective[2]

    def evaluated(number: int, accuracy: float, score: float, violations: dict[str, float]) -> CandidateRecord:
        return CandidateRecord(
            number, f"h{number}", Status.EVALUATED, {"depth": 2, "width": 16}, feasible=not any(violations.values()),
            inquired=True, score=score, values=values(accuracy, MEASURED["macs"], score), violations=violations,
            measurements={**MEASURED, "accuracy": accuracy, "score": score},
        )

    return {r.number: r for r in [
        evaluated(0, 81.0, 0.7, OK),
        CandidateRecord(1, "h1", Status.REJECTED, {"depth": 3, "width": 8}, rejected_at="structural",
                        reason="structural: columnar", violations={"columnar": 2.0, "max_params": 0.0}),
        CandidateRecord(2, "h2", Status.FAILED, {"depth": 1, "width": 32}, reason="build failed: ValueError: bad kernel",
                        inquired=True, violations=OK),
        CandidateRecord(3, "h0", Status.DUPLICATE, {"depth": 2, "width": 16}, reason="same architecture as candidate 0",
                        duplicate_of=0, violations=OK),
        CandidateRecord(4, "h4", Status.REJECTED, {"depth": 3, "width": 32}, rejected_at="probe", inquired=True,
                        reason="measured: max_params", violations={"columnar": 0.0, "max_params": 1.5},
                        measurements={**MEASURED, "params": 9e6}),
        evaluated(5, 60.0, 0.4, {"columnar": 0.0, "max_params": 0.0, "reference_beating": 0.25}),
    ]}


@pytest.fixture(params=["sqlite", "journal"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The ``--storage`` string of each kind (a fresh file per test)."""
    return f"sqlite:///{tmp_path / 'study.db'}" if request.param == "sqlite" else str(tmp_path / "run.log")


def load(storage: str) -> optuna.Study:
    """The study as plain Optuna opens it, without gensynth."""
    plain = storage if "://" in storage else JournalStorage(JournalFileBackend(storage))
    return optuna.load_study(study_name=STUDY, storage=plain)


def mirror(storage: str, objective: tuple = SINGLE) -> StorageMirror:
    return StorageMirror(storage, STUDY, objective[0], objective[1], distributions, objective="netscore")


def assert_truthful(trial: FrozenTrial, rec: CandidateRecord) -> None:
    """The trial says what the record says, and no number in it is a placeholder."""
    states = {Status.EVALUATED: TrialState.COMPLETE, Status.REJECTED: TrialState.PRUNED,
              Status.DUPLICATE: TrialState.PRUNED, Status.FAILED: TrialState.FAIL}
    assert (trial.number, trial.state) == (rec.number, states[rec.status])
    assert trial.values == rec.values
    assert trial.params == rec.genome
    attrs = trial.user_attrs
    assert (attrs["candidate"], attrs["hash"], attrs["status"], attrs["feasible"]) == (rec.number, rec.hash, rec.status.value, rec.feasible)
    assert attrs.get("reason", "") == rec.reason and attrs.get("rejected_at", "") == rec.rejected_at
    assert attrs.get("score") == rec.score and attrs.get("duplicate_of") == rec.duplicate_of
    assert {k: attrs[k] for k in rec.measurements} == rec.measurements
    assert {k: trial.constraints[k] for k in rec.violations} == rec.violations
    assert trial.system_attrs["constraints"] == list(rec.violations.values())  # what optuna-dashboard reads
    numbers = [*(trial.values or []), *trial.constraints.values(), *(v for v in attrs.values() if isinstance(v, (int, float)))]
    assert all(math.isfinite(v) and abs(v) < PLACEHOLDER for v in numbers), numbers


@pytest.mark.parametrize("objective", [SINGLE, PARETO], ids=["netscore", "pareto"])
def test_trials_are_written_in_candidate_order_and_tell_the_truth(storage: str, objective: tuple):
    records = make_records(objective)
    m = mirror(storage, objective)
    for number in (2, 0, 1):  # finished out of order
        m.record(records[number])
    answers = iter([False, True])
    m.flush(stop=lambda: next(answers))  # a result is ready after the first write
    assert len(load(storage).trials) == 1
    m.record(records[4])
    m.flush()
    assert len(load(storage).trials) == 3, "candidate 3 is still measured: 4 waits"
    m.record(records[3])
    m.record(records[5])
    m.close()

    study = load(storage)
    assert study.metric_names == objective[1]
    assert [d.name.lower() for d in study.directions] == objective[0]
    assert study.user_attrs["objective"] == "netscore" and study.user_attrs["gensynth_version"]
    assert [t.number for t in study.trials] == list(records)
    for trial in study.trials:
        assert_truthful(trial, records[trial.number])


def test_catch_up_writes_what_a_kill_left_out_and_fails_numbers_lost_in_flight(storage: str):
    records = make_records()
    m = mirror(storage)
    for number in (0, 1):
        m.record(records[number])
    m.flush()  # killed here: 2, 4 and 5 were in candidates.jsonl, 3 was being measured

    resumed = mirror(storage)
    resumed.catch_up([records[n] for n in (0, 1, 2, 4, 5)])
    resumed.record(records[1])  # already stored: ignored
    resumed.close()

    trials = load(storage).trials
    assert [t.number for t in trials] == [0, 1, 2, 3, 4, 5]
    lost = trials[3]
    assert lost.state == TrialState.FAIL and lost.values is None and not lost.constraints
    assert lost.user_attrs == {"candidate": 3, "reason": LOST_REASON}
    for trial in trials[:3] + trials[4:]:
        assert_truthful(trial, records[trial.number])


@pytest.mark.parametrize("landed", [True, False], ids=["after-the-write", "before-the-write"])
def test_a_write_interrupted_by_ctrl_c_is_not_written_twice(storage: str, landed: bool, monkeypatch: pytest.MonkeyPatch):
    """Ctrl-C or SIGTERM inside ``add_trial``: the run's ``finally`` closes the mirror, which must not shift the numbers."""
    records = make_records()
    m = mirror(storage)
    add_trial = m.study.add_trial

    def interrupted(trial):
        if landed:
            add_trial(trial)
        monkeypatch.setattr(m.study, "add_trial", add_trial)
        raise KeyboardInterrupt

    m.record(records[0])
    m.flush()
    monkeypatch.setattr(m.study, "add_trial", interrupted)
    m.record(records[1])
    with pytest.raises(KeyboardInterrupt):
        m.flush()
    m.record(records[2])
    m.close()
    trials = load(storage).trials
    assert [t.number for t in trials] == [0, 1, 2]
    for trial in trials:
        assert_truthful(trial, records[trial.number])


def test_a_study_of_another_run_is_refused(storage: str):
    records = make_records()
    m = mirror(storage)
    m.record(records[0])
    m.close()
    other = CandidateRecord(0, "other", Status.FAILED, {"depth": 1, "width": 8}, reason="x")
    with pytest.raises(UserError, match="holds trial 0 for architecture h0, but this run's candidate 0 is other"):
        mirror(storage).catch_up([other])
    with pytest.raises(UserError, match=r"optimizes \['maximize'\], this run \['maximize', 'minimize'\]"):
        mirror(storage, PARETO)


@pytest.mark.parametrize("url, why", [
    ("sqlite:///{tmp}/missing/study.db", "unable to open database file"),
    ("{tmp}/missing/run.log", "No such file or directory"),
    ("journal://{tmp}", "Is a directory"),
    ("journal:///{tmp}/candidates.jsonl", "is not an Optuna journal file"),
    ("sqlite:///{tmp}/not_a_db.db", "file is not a database"),
    ("nosuchdb://host/db", "Can't load plugin"),
    ("postgresql+nosuchdriver://u:secret@127.0.0.1:1/db", "Can't load plugin"),
    ("{tmp}/study.db", "is not an Optuna storage"),
    ("journal://", "the journal file has no path"),
])
def test_a_storage_that_cannot_be_opened_is_a_one_line_user_error(tmp_path: Path, url: str, why: str):
    (tmp_path / "candidates.jsonl").write_text('{"number": 0, "hash": "h0"}\n')
    (tmp_path / "not_a_db.db").write_text("not SQLite\n")
    url = url.format(tmp=tmp_path)
    start = time.monotonic()
    with pytest.raises(UserError) as err:
        open_storage(url)
    message = str(err.value)
    assert why in message and "\n" not in message
    assert "secret" not in message, "the password is hidden"
    assert time.monotonic() - start < 5
    assert not (tmp_path / "missing").exists()


@pytest.mark.skipif(importlib.util.find_spec("psycopg2") is not None, reason="psycopg2 is installed: no driver is missing")
def test_a_missing_database_driver_is_named():
    expected = "storage 'postgresql+psycopg2://u:***@127.0.0.1:1/db': its database driver is not installed (No module named 'psycopg2')"
    with pytest.raises(UserError, match=f"^{re.escape(expected)}$"):
        open_storage("postgresql+psycopg2://u:secret@127.0.0.1:1/db")


# -- optuna-dashboard --------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_optuna_dashboard_reads_the_study_its_trials_and_their_constraints(storage: str):
    pytest.importorskip("optuna_dashboard", reason="optuna-dashboard is not installed (it is in the [dev] extra)")
    records = make_records()
    m = mirror(storage)
    for rec in records.values():
        m.record(rec)
    m.close()

    port = _free_port()
    base = f"http://127.0.0.1:{port}/api"
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("optuna-dashboard")), storage, "--host", "127.0.0.1", "--port", str(port), "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                studies = _get(f"{base}/studies")["study_summaries"]
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, f"optuna-dashboard exited: {server.stderr.read().decode()}"
                assert time.monotonic() < deadline, "optuna-dashboard did not answer within 10 s"
                time.sleep(0.2)
        assert [s["study_name"] for s in studies] == [STUDY]
        detail = _get(f"{base}/studies/{studies[0]['study_id']}")
    finally:
        server.terminate()
        server.wait(timeout=5)

    assert detail["name"] == STUDY and detail["objective_names"] == ["score"]
    trials = detail["trials"]
    assert [t["number"] for t in trials] == list(records)
    assert [t["state"] for t in trials] == ["Complete", "Pruned", "Fail", "Pruned", "Pruned", "Complete"]
    assert [t.get("values") for t in trials] == [[0.7], None, None, None, None, [0.4]]
    feasible = [all(c <= 0 for c in t["constraints"]) for t in trials]
    assert trials[1]["constraints"] == [2.0, 0.0] and trials[4]["constraints"] == [0.0, 1.5]
    assert feasible == [True, False, True, True, False, False]  # 5 is greyed out as infeasible
    assert {a["key"]: a["value"] for a in trials[1]["user_attrs"]} == {
        "candidate": "1", "hash": "h1", "status": "rejected", "feasible": "False",
        "reason": "structural: columnar", "rejected_at": "structural",
    }


def test_a_new_run_stores_its_study_in_a_journal_file_and_an_older_run_keeps_its_sqlite_file(tmp_path: Path):
    from gensynth.search.store import RunStore

    assert RunStore(tmp_path / "new").default_storage_url == str((tmp_path / "new" / "study.log").resolve())
    (tmp_path / "new").mkdir()
    assert isinstance(open_storage(RunStore(tmp_path / "new").default_storage_url), JournalStorage)
    old = tmp_path / "old"
    old.mkdir()
    optuna.create_study(storage=f"sqlite:///{old / 'study.db'}", study_name="old")
    assert RunStore(old).default_storage_url == f"sqlite:///{(old / 'study.db').resolve()}"
    assert [s.study_name for s in optuna.get_all_study_summaries(open_storage(RunStore(old).default_storage_url))] == ["old"]
