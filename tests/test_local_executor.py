"""The local executor: training in this process, probes in a probe process beside it."""
from __future__ import annotations

import os
import signal
import time

import pytest

from gensynth.data import load_dataset
from gensynth.ir import to_dict
from gensynth.search.config import LatencyConfig, TrainingConfig
from gensynth.search.executors import LocalExecutor
from gensynth.search.inquisitor import ProbeTask, TrainTask, probe
from gensynth.search.probe_process import ProbeProcess
from gensynth.space import load_space

SPACE = load_space("dcac")
BROKEN = {"nodes": [{"name": "input", "op": "input"}, {"name": "x", "op": "no_such_op", "inputs": ["input"]}]}


@pytest.fixture
def probes():
    process = ProbeProcess()
    yield process
    process.stop()


def small_task(runs: int = 1) -> ProbeTask:
    return ProbeTask(to_dict(SPACE.seed_graph().retarget(resolution=64)), LatencyConfig(runs=runs, warmup=0), 1)


def test_the_probe_process_measures_what_the_driver_would(probes):
    task = small_task()
    probes.submit(task)
    there = probes.result()
    here = probe(task)
    assert there.ok, there.reason
    assert there.measurements["params"] == here.measurements["params"]
    assert there.measurements["macs"] == here.measurements["macs"]
    assert there.measurements["latency_ms"] > 0 and set(there.timings) == {"cost_s", "latency_s"}


def test_a_failing_task_comes_back_failed_and_the_same_process_goes_on(probes):
    probes.submit(ProbeTask(BROKEN, LatencyConfig(runs=0), 1))
    pid = probes.pid
    failed = probes.result()
    assert not failed.ok and failed.reason.startswith("crashed:") and "no_such_op" in failed.reason
    probes.submit(small_task())
    assert probes.result().ok and probes.pid == pid and not probes.busy


def test_a_probe_process_that_dies_fails_its_task_and_the_next_task_gets_a_fresh_one(probes):
    probes.submit(small_task(runs=100_000))  # busy long enough to be killed mid-task
    first_pid = probes.pid
    time.sleep(1.0)
    os.kill(first_pid, signal.SIGKILL)
    died = probes.result()
    assert not died.ok and died.reason.startswith("crashed: the probe process died (killed by SIGKILL")
    probes.submit(small_task())
    assert probes.result().ok
    assert probes.pid != first_pid


def test_stop_abandons_a_running_task_at_once(probes):
    probes.submit(small_task(runs=100_000))
    time.sleep(0.5)
    started = time.monotonic()
    probes.stop()
    assert time.monotonic() - started < 5 and probes.pid is None


def test_local_executor_failures_are_results():
    ex = LocalExecutor()
    ex.start(load_dataset("fashion-mnist", train_limit=64, val_limit=50, seed=0))
    try:
        ex.submit(1, ProbeTask(BROKEN, LatencyConfig(runs=0), 1))
        assert ex.runs_in_background
        ((key, result),) = ex.wait()
        assert key == 1 and not ex.runs_in_background
        ex.submit(2, TrainTask(BROKEN, SPACE.proxy, TrainingConfig(), 0, 1))
        assert ex.has_results()
        ((key2, result2),) = ex.wait()
        assert key2 == 2
        assert all(not r.ok and r.reason.startswith("crashed:") for r in (result, result2))
        assert ex.wait() == []
    finally:
        ex.shutdown()


def test_the_local_executor_never_runs_two_tasks_at_once():
    ex = LocalExecutor()
    ex.start(load_dataset("fashion-mnist", train_limit=64, val_limit=50, seed=0))
    try:
        ex.submit(1, small_task())
        ex.submit(2, ProbeTask(BROKEN, LatencyConfig(runs=0), 1))  # waits for the first probe's result
        assert [key for key, _ in ex.wait()] == [1]
        assert [key for key, _ in ex.wait()] == [2]
    finally:
        ex.shutdown()
