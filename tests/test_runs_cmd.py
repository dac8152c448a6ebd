"""`gensynth runs` and `gensynth show --format`: runs and results as data for scripts, read without writing.

Two small fake-stage runs (no training): one finished, one whose lock a live
search holds (this test, through the engine's own ``RunLock``).
"""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from gensynth.cli.main import main
from gensynth.report.runs import CAPPED, FINISHED, IN_PROGRESS, STOPPED, RunSummary
from gensynth.search.config import SearchConfig
from gensynth.search.lock import RunLock
from gensynth.search.metrics import list_metrics
from gensynth.search.store import RunStore
from test_loop import FirstChoice, make_search, tiny_space  # noqa: F401  (tiny_space is a fixture)


def fake_run(space, root: Path, config: SearchConfig, evaluate: int, **options) -> Path:
    """A run of ``evaluate`` candidates (fake stages) with ``config`` as its config.yaml."""
    make_search(space, root, budget=evaluate, mirror=False, emit=False, **options).run()
    (root / "config.yaml").write_text(yaml.safe_dump(config.to_dict()))
    return root


@pytest.fixture(scope="module")
def runs(tiny_space, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("runs")
    fake_run(tiny_space, folder / "done", SearchConfig(budget=3), evaluate=3)
    fake_run(tiny_space, folder / "busy", SearchConfig(budget=10), evaluate=2)
    fake_run(tiny_space, folder / "capped", SearchConfig(budget=3, max_proposals=4), evaluate=3, sampler=FirstChoice(), constraints=[],
             proposal_cap=4)
    (folder / "not-a-run").mkdir()
    return folder


@pytest.fixture
def busy_lock(runs):
    lock = RunLock(runs / "busy")
    lock.acquire()
    yield
    lock.release()


def files(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.stat().st_size) for p in folder.rglob("*")}


def out_of(capsys, argv: list[str]) -> str:
    assert main(argv) == 0
    return capsys.readouterr().out


def best_score(run: Path) -> float:
    return max(r.score for r in RunStore(run).records() if r.feasible)


def test_runs_json_lists_each_run_with_status_budget_and_best(runs, busy_lock, capsys):
    listed = {Path(r["run"]).name: r for r in json.loads(out_of(capsys, ["runs", str(runs), "--format", "json"]))}
    assert set(listed) == {"done", "busy", "capped"}
    done, busy, capped = listed["done"], listed["busy"], listed["capped"]
    assert (done["status"], done["budget"], done["evaluated"]) == (FINISHED, 3, 3)
    assert (busy["status"], busy["budget"], busy["evaluated"]) == (IN_PROGRESS, 10, 2)
    assert (capped["status"], capped["evaluated"], capped["proposals"]) == (CAPPED, 1, 4)
    assert done["best_score"] == best_score(runs / "done")
    changed = datetime.fromisoformat(done["last_change"])
    assert abs(changed.timestamp() - (runs / "done" / "candidates.jsonl").stat().st_mtime) < 1


def test_a_run_whose_lock_is_free_stopped_before_its_budget(runs, capsys):
    (busy,) = [r for r in json.loads(out_of(capsys, ["runs", str(runs), "--format", "json"])) if r["run"].endswith("busy")]
    assert busy["status"] == STOPPED


def test_runs_csv_has_one_line_per_run(runs, capsys):
    rows = list(csv.DictReader(io.StringIO(out_of(capsys, ["runs", str(runs), "--format", "csv"]))))
    assert list(rows[0]) == list(RunSummary.COLUMNS)
    assert sorted(Path(r["run"]).name for r in rows) == ["busy", "capped", "done"]


def test_runs_table(runs, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    text = out_of(capsys, ["runs", str(runs)])
    assert "done" in text and "busy" in text and FINISHED in text and f"{best_score(runs / 'done'):.3f}" in text


def test_runs_of_a_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["runs", str(tmp_path / "nowhere")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_show_json_is_every_record(runs, capsys):
    records = RunStore(runs / "done").records()
    shown = json.loads(out_of(capsys, ["show", str(runs / "done"), "--format", "json"]))
    assert [r["number"] for r in shown] == [r.number for r in records]
    assert [r["status"] for r in shown] == [r.status.value for r in records]


def test_show_csv_has_a_column_per_metric(runs, capsys):
    records = {r.number: r for r in RunStore(runs / "done").records()}
    rows = list(csv.DictReader(io.StringIO(out_of(capsys, ["show", str(runs / "done"), "--format", "csv"]))))
    assert {"number", "status", "feasible", "score", *list_metrics()} <= set(rows[0])
    assert len(rows) == len(records)
    for row in rows:
        record = records[int(row["number"])]
        assert row["status"] == record.status.value and row["feasible"] == str(record.feasible)
        for name in list_metrics():
            if name in record.measurements:
                assert float(row[name]) == record.measurements[name]


def test_nothing_is_written_into_the_runs(runs, busy_lock, capsys):
    before = files(runs)
    for argv in (["runs", str(runs)], ["runs", str(runs), "--format", "csv"], ["runs", str(runs / "done"), "--format", "json"],
                 ["show", str(runs / "done"), "--format", "json"], ["show", str(runs / "busy"), "--format", "csv"]):
        out_of(capsys, argv)
    assert files(runs) == before
