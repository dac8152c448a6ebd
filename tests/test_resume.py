"""Resuming: the same command on the same run directory continues, evaluates nothing twice, honours the budget.

Runs use a cut-down copy of the shipped ``dcac`` space and a tiny proxy
protocol, so each candidate takes about a second.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState
import pytest
import yaml

from gensynth.search.mirror import open_storage
from tiny_space import main_one_thread, write_protocol, write_tiny_space  # noqa: E402

GENSYNTH = Path(sys.executable).with_name("gensynth")
if not GENSYNTH.exists():  # not run from the venv's own python
    GENSYNTH = Path(shutil.which("gensynth") or GENSYNTH)

@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    """(space file, config file with the tiny protocol)."""
    root = tmp_path_factory.mktemp("resume")
    space = write_tiny_space(root)
    return space, write_protocol(root, space=str(space))


def argv(cfg: Path, out: Path, budget: int, *extra: str) -> list[str]:
    return ["search", "--config", str(cfg), "--budget", str(budget), "--seed", "0", "--out", str(out), "--no-progress", *extra]


def lines(run: Path) -> list[str]:
    return (run / "candidates.jsonl").read_text().splitlines()


def parsed(run: Path) -> list[dict]:
    return [json.loads(line) for line in lines(run)]


def inquired_hashes(records: list[dict]) -> list[str]:
    return [r["hash"] for r in records if r["inquired"]]


# -- kill -9 in the middle of a run --------------------------------------------------------------------------


def complete_lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    raw = path.read_bytes()
    return raw[: raw.rfind(b"\n") + 1].decode().splitlines()


def test_sigkill_then_the_same_command_finishes_the_budget(setup, tmp_path):
    _, cfg = setup
    out = tmp_path / "run"
    command = [str(GENSYNTH), *argv(cfg, out, 6)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    journal = out / "candidates.jsonl"
    deadline = time.monotonic() + 180
    try:
        while True:
            done = [line for line in complete_lines(journal) if json.loads(line)["inquired"]]
            if len(done) >= 2:
                break
            if proc.poll() is not None:
                pytest.fail(f"the run ended (code {proc.returncode}) before it could be killed: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no two inquired candidates within 180 s")
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished its budget of 6 before the kill: make candidates slower"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    before = complete_lines(journal)
    before_records = [json.loads(line) for line in before]
    assert 2 <= sum(r["inquired"] for r in before_records) < 6

    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    after = lines(out)
    records = [json.loads(line) for line in after]
    assert sum(r["inquired"] for r in records) == 6, "the resumed run must complete exactly its budget"
    assert after[: len(before)] == before, "lines written before the kill must stay, unchanged, at the start"
    hashes = inquired_hashes(records)
    assert len(hashes) == len(set(hashes)), "an architecture was evaluated twice"
    earlier = set(inquired_hashes(before_records))
    assert not earlier & set(inquired_hashes(records[len(before):])), "a finished candidate was evaluated again after the resume"
    numbers = [r["number"] for r in records]
    assert len(numbers) == len(set(numbers)), "a trial number was recorded twice"
    assert f"{6} evaluated" in again.stdout
    # the Optuna storage agrees with the journal after the resume; numbers lost in flight are failed trials
    study = optuna.load_study(study_name=out.name, storage=open_storage(str(out / "study.log")))
    mirrored = {t.number: t for t in study.get_trials(deepcopy=False)}
    assert sorted(mirrored) == list(range(max(numbers) + 1))
    by_number = {r["number"]: r for r in records}
    states = {"evaluated": TrialState.COMPLETE, "rejected": TrialState.PRUNED, "duplicate": TrialState.PRUNED, "failed": TrialState.FAIL}
    for number, trial in mirrored.items():
        record = by_number.get(number)
        assert trial.values == (record["values"] if record else None)
        assert trial.state == (states[record["status"]] if record else TrialState.FAIL)


# -- resuming a finished run -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(setup, tmp_path_factory) -> tuple[Path, Path]:
    """A finished budget-2 run: (config, run dir)."""
    _, cfg = setup
    out = tmp_path_factory.mktemp("finished") / "run"
    assert main_one_thread(argv(cfg, out, 2)) == 0
    assert sum(r["inquired"] for r in parsed(out)) == 2
    return cfg, out


def test_rerun_of_a_finished_run_evaluates_nothing(finished, capsys):
    cfg, out = finished
    before = (out / "candidates.jsonl").read_bytes()
    assert main_one_thread(argv(cfg, out, 2)) == 0
    assert (out / "candidates.jsonl").read_bytes() == before
    assert "2 evaluated" in capsys.readouterr().out


def test_a_torn_last_line_is_cut_on_resume(finished):
    cfg, out = finished
    journal = out / "candidates.jsonl"
    before = journal.read_bytes()
    last = before.splitlines()[-1]
    with open(journal, "ab") as f:
        f.write(last[: len(last) // 2])  # a kill in the middle of a write
    assert main_one_thread(argv(cfg, out, 2)) == 0
    assert journal.read_bytes() == before
    for line in lines(out):
        json.loads(line)


@pytest.mark.parametrize(
    ("extra", "key"),
    [(["--seed", "1"], "seed"), (["--train-images", "32"], "training"), (["--sampler", "random"], "sampler")],
)
def test_a_different_option_on_an_existing_run_is_refused(finished, capsys, extra, key):
    cfg, out = finished
    before = (out / "candidates.jsonl").read_bytes()
    args = argv(cfg, out, 2)
    if extra[0] == "--seed":
        args[args.index("--seed") + 1] = extra[1]
    else:
        args += extra
    assert main_one_thread(args) == 2
    err = capsys.readouterr().err
    lines_ = [line for line in err.splitlines() if line.strip()]
    assert len(lines_) == 1 and "Traceback" not in err, err
    assert "config.yaml" in lines_[0] and key in lines_[0]
    assert (out / "candidates.jsonl").read_bytes() == before


def test_a_different_seed_on_the_command_line_exits_2(finished):
    """The same refusal through the installed script: exit code 2 and one line."""
    cfg, out = finished
    args = argv(cfg, out, 2)
    args[args.index("--seed") + 1] = "1"
    proc = subprocess.run([str(GENSYNTH), *args], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2
    err_lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(err_lines) == 1, proc.stderr
    assert "config.yaml" in err_lines[0] and "seed" in err_lines[0]


def test_the_same_run_directory_named_differently_resumes(finished, monkeypatch, capsys):
    """`--out runs/x` and `--out /abs/.../runs/x` (or `runs/x/`) are the same run directory."""
    cfg, out = finished
    before = (out / "candidates.jsonl").read_bytes()
    monkeypatch.chdir(out.parent)
    code = main_one_thread(argv(cfg, Path(out.name), 2))
    err = capsys.readouterr().err
    assert code == 0, err
    assert (out / "candidates.jsonl").read_bytes() == before


def test_a_larger_budget_evaluates_only_the_difference(finished):
    """(Last in this module: it grows the shared finished run to budget 4.)"""
    cfg, out = finished
    before = lines(out)
    assert main_one_thread(argv(cfg, out, 4)) == 0
    after = lines(out)
    assert after[: len(before)] == before
    records = [json.loads(line) for line in after]
    assert sum(r["inquired"] for r in records) == 4
    new = [json.loads(line) for line in after[len(before):]]
    assert sum(r["inquired"] for r in new) == 2
    hashes = inquired_hashes(records)
    assert len(hashes) == len(set(hashes))
    assert yaml.safe_load((out / "config.yaml").read_text())["budget"] == 4
    assert main_one_thread(argv(cfg, out, 4)) == 0  # and once more: nothing new
    assert lines(out) == after
