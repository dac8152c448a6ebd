"""The local executor with two workers: single-thread worker processes, results as they finish, deaths as failed results,
no orphans; and the loop, recording in proposal order, gives the sampler the same sequence with one worker or two.

The workers import the fake tasks of ``pool_tasks`` by name: the ``importable`` fixture puts ``tests/`` on ``PYTHONPATH``.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest

from gensynth.data import load_dataset
from gensynth.plugins import instantiate
from gensynth.search.config import DEFAULT_CONSTRAINTS, ObjectiveConfig, SearchConfig, resolve_workers
from gensynth.search.executors import Executor, LocalExecutor, make_executor
from gensynth.search.generator import Generator
from gensynth.search.inquisitor import TaskResult
from gensynth.search.judge import ConstraintEngine
from gensynth.search.objective import make_objective
from gensynth.search.run import Search
from gensynth.search.stages import Task
from gensynth.search.store import RunStore
from gensynth.search.worker_pool import WorkerPool
from gensynth.space import load_space
from pool_tasks import Clocked, Environment, HashedStage, Shuffled, Sleep
from tiny_space import main_one_thread, write_protocol, write_tiny_space


@pytest.fixture(scope="module")
def data():
    return load_dataset("fashion-mnist", train_limit=64, val_limit=50, seed=0)


@pytest.fixture
def pool(importable, data):
    pool = WorkerPool(2, threads=1)
    pool.start(data)
    collect(pool, {"warm-0": Sleep(0), "warm-1": Sleep(0)})  # both workers up: timings below are the tasks'
    yield pool
    pool.shutdown()


def collect(executor: Executor, tasks: dict[Any, Task]) -> dict[Any, TaskResult]:
    for key, task in tasks.items():
        executor.submit(key, task)
    results: dict[Any, TaskResult] = {}
    while len(results) < len(tasks):
        results.update(executor.wait())
    return results


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (a zombie waiting for its reaper counts)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


# -- the pool -------------------------------------------------------------------------------------------------


def test_results_come_back_as_tasks_finish(pool):
    pool.submit("slow", Sleep(1.5))
    pool.submit("fast", Sleep(0.0))
    assert pool.runs_in_background
    assert [key for key, _ in pool.wait()] == ["fast"]
    assert [key for key, _ in pool.wait()] == ["slow"]
    assert pool.wait() == [] and not pool.has_results()


def test_each_worker_has_one_torch_thread_and_the_dataset(pool):
    results = collect(pool, {0: Environment(), 1: Environment()})
    seen = [r.measurements for r in results.values()]
    assert all(r.ok for r in results.values())
    assert all(m["threads"] == 1 and m["omp"] == 1 and m["train_images"] == 64 for m in seen), seen
    assert seen[0]["pid"] != seen[1]["pid"], "two tasks at once run in two workers"


def test_a_killed_worker_fails_its_task_and_is_replaced(pool):
    pool.submit("doomed", Sleep(60))
    victim = pool.workers[0].pid
    pool.submit("other", Sleep(0.5, value=7))
    time.sleep(0.3)
    os.kill(victim, signal.SIGKILL)
    results: dict[Any, TaskResult] = {}
    while len(results) < 2:
        results.update(pool.wait())
    assert not results["doomed"].ok
    assert results["doomed"].reason.startswith("crashed: the worker process died (killed by SIGKILL"), results["doomed"].reason
    assert results["other"].ok and results["other"].measurements["value"] == 7
    after = collect(pool, {"a": Sleep(0), "b": Sleep(0)})
    pids = {r.measurements["pid"] for r in after.values()}
    assert all(r.ok for r in after.values()) and len(pids) == 2 and victim not in pids


def test_a_task_the_workers_cannot_import_fails_alone(pool, monkeypatch):
    """As a task class defined in a user's script: the driver pickles ``__main__.Ghost``, a worker's ``__main__`` has none."""

    class Ghost(Sleep):
        pass

    Ghost.__module__, Ghost.__qualname__ = "__main__", "Ghost"
    monkeypatch.setattr(sys.modules["__main__"], "Ghost", Ghost, raising=False)
    pids = {w.pid for w in pool.workers}
    results = collect(pool, {"ghost": Ghost(0), "fine": Sleep(0)})
    assert not results["ghost"].ok and "cannot be loaded in a child process" in results["ghost"].reason
    assert "Ghost" in results["ghost"].reason and results["fine"].ok
    assert {w.pid for w in pool.workers} == pids, "no worker died"


def test_shutdown_ends_the_workers(pool):
    pids = [w.pid for w in pool.workers]
    pool.submit("running", Sleep(60))
    pool.shutdown()
    assert all(gone(pid) for pid in pids)


DRIVER = """
import time
from gensynth.search.worker_pool import WorkerPool
from pool_tasks import Sleep
pool = WorkerPool(2)
pool.start(None)
pool.submit(0, Sleep(60)); pool.submit(1, Sleep(60))
print(*[w.pid for w in pool.workers], flush=True)
time.sleep(60)
"""


def test_no_worker_outlives_a_driver_killed_with_sigkill(importable):
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(pid) for pid in driver.stdout.readline().split()]
        time.sleep(0.5)
    finally:
        driver.kill()
        driver.wait()
        driver.stdout.close()
    assert len(pids) == 2
    deadline = time.monotonic() + 10  # a worker still importing torch sees its parent gone when it is done
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert all(gone(pid) for pid in pids), "a worker outlived its driver"


# -- workers: 0 -----------------------------------------------------------------------------------------------


def test_workers_zero_means_the_usable_cores_up_to_two_for_local(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert resolve_workers(SearchConfig()) == 2 and resolve_workers(SearchConfig(executor="ray")) == 2
    assert resolve_workers(SearchConfig(workers=3)) == 3
    assert isinstance(make_executor(SearchConfig()), WorkerPool)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert resolve_workers(SearchConfig()) == 1
    assert isinstance(make_executor(SearchConfig()), LocalExecutor), "one core: training in the driver, probes beside it"


# -- determinism: one worker, two workers, any finishing order ------------------------------------------------


def fake_run(tmp_path: Path, executor: Executor, name: str, budget: int = 8, **options: Any) -> list[tuple]:
    """A seeded TPE search on the tests' tiny space with a probe-like and a training-like fake stage: its records."""
    space = load_space(str(write_tiny_space(tmp_path)))
    objective = make_objective(ObjectiveConfig())
    sampler = optuna.samplers.TPESampler(seed=0, n_startup_trials=3)  # from the 4th ask on, proposals depend on what was told
    generator = Generator(space, list(objective.directions), sampler, objective.placeholder())
    store = RunStore(tmp_path / name)
    store.create()
    stages = [HashedStage("probe", ("params", "macs"), needs_data=False, stop_below=0.2), HashedStage("train", ("accuracy",), needs_data=True)]
    search = Search(space=space, generator=generator, executor=executor, store=store, objective=objective,
                    constraints=ConstraintEngine([instantiate(c) for c in DEFAULT_CONSTRAINTS]), stages=stages, budget=budget, proposal_cap=50 * budget, **options)
    search.run()
    return [(r.number, r.hash, r.status.value, r.reason, r.measurements, r.score) for r in store.records()]


@pytest.mark.parametrize("propose_ahead", [1, 2])
def test_any_finishing_order_gives_the_same_records(tmp_path, propose_ahead):
    runs = [fake_run(tmp_path, Shuffled(seed), f"run{seed}", propose_ahead=propose_ahead) for seed in range(4)]
    assert sum(status == "evaluated" for _, _, status, *_ in runs[0]) >= 3
    assert all(run == runs[0] for run in runs[1:])


def test_proposing_two_ahead_keeps_two_workers_busy_while_the_oldest_candidate_runs(tmp_path):
    """Tasks of random length on a virtual clock: with one candidate proposed ahead a worker that finishes a short
    task waits for the oldest one's record; with two it takes the next candidate."""
    idle = {}
    for ahead in (1, 2):
        clocked = Clocked()
        fake_run(tmp_path, clocked, f"ahead{ahead}", budget=16, propose_ahead=ahead)
        idle[ahead] = clocked.idle_s / (clocked.capacity * clocked.now)
    assert idle[2] < idle[1] / 2, idle


def test_one_worker_and_two_workers_give_the_same_records(tmp_path, importable):
    one = fake_run(tmp_path, LocalExecutor(), "one")
    two = fake_run(tmp_path, WorkerPool(2), "two")
    assert {status for _, _, status, *_ in one} >= {"evaluated", "rejected"}
    assert two == one
    assert two == fake_run(tmp_path, Shuffled(0), "shuffled")


@pytest.mark.slow
def test_a_seeded_tiny_search_with_two_workers_records_what_one_worker_does(tmp_path):
    """Real probes and training (one torch thread in the driver, as in each worker): the same records, accuracies included."""
    space, protocol = write_tiny_space(tmp_path), write_protocol(tmp_path)
    runs = {}
    for workers in (1, 2):
        out = tmp_path / f"run{workers}"
        assert main_one_thread(["search", "--space", str(space), "--config", str(protocol), "--seed", "0", "--budget", "6",
                                "--out", str(out), "--no-progress", "--workers", str(workers)]) == 0
        records = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
        runs[workers] = [(r["number"], r["hash"], r["status"], r["reason"], r["score"],
                          {k: v for k, v in r["measurements"].items() if not k.startswith("latency")}) for r in records]
    assert sum(r[2] == "evaluated" for r in runs[1]) >= 3
    assert runs[2] == runs[1]
