"""The Ray executor on a local 2-CPU cluster: failures come back as failed results, a small search finishes.

One ``ray.init`` for the whole module (start-up takes seconds); the failure-path
tests come first, the search last.
"""
from __future__ import annotations

import json
import os

import pytest
import yaml

ray = pytest.importorskip("ray")

from gensynth.data import load_dataset  # noqa: E402
from gensynth.ir import to_dict  # noqa: E402
from gensynth.search.config import LatencyConfig, TrainingConfig  # noqa: E402
from gensynth.search.executors import RayExecutor  # noqa: E402
from gensynth.search.inquisitor import ProbeTask, TaskResult, TrainTask  # noqa: E402
from gensynth.space import load_space  # noqa: E402
from tiny_space import main_one_thread, write_protocol, write_tiny_space  # noqa: E402

@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster with 2 CPUs for the whole module."""
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started and ray.is_initialized():
        ray.shutdown()


@pytest.fixture(scope="module")
def data():
    return load_dataset("fashion-mnist", train_limit=64, val_limit=50, seed=0)


@pytest.fixture(scope="module")
def executor(cluster, data):
    ex = RayExecutor(address="", workers=2, threads=1, max_retries=1)
    ex.start(data)  # Ray is already up: the executor joins it
    return ex  # no ex.shutdown() here: the module's cluster stays up for the next tests


@pytest.fixture(scope="module")
def tiny_graph():
    space = load_space("dcac")
    return space.seed_graph().retarget(resolution=64)


def test_ray_runs_probe_and_train_tasks(executor, tiny_graph):
    space = load_space("dcac")
    executor.submit("probe", ProbeTask(to_dict(tiny_graph), LatencyConfig(runs=1, warmup=0), 1))
    executor.submit("train", TrainTask(to_dict(tiny_graph), space.proxy, TrainingConfig(train_images=64, val_images=50, batch_size=32), 0, 1))
    results = {}
    while len(results) < 2:
        results.update(dict(executor.wait()))
    assert results["probe"].ok and results["probe"].measurements["params"] > 0, results["probe"].reason
    assert results["train"].ok and 0 <= results["train"].measurements["accuracy"] <= 100, results["train"].reason
    assert results["train"].weights


def test_a_task_that_fails_inside_comes_back_failed(executor):
    broken = {"nodes": [{"name": "input", "op": "input"}, {"name": "x", "op": "no_such_op", "inputs": ["input"]}]}
    executor.submit("broken", ProbeTask(broken, LatencyConfig(runs=0), 1))
    ((key, result),) = executor.wait()
    assert key == "broken" and isinstance(result, TaskResult)
    assert not result.ok and result.reason.startswith("crashed:") and "no_such_op" in result.reason


def test_a_dying_worker_is_retried_then_reported_failed(executor, tiny_graph):
    """A worker process that dies mid-task (os._exit) is retried max_retries times, then reported, not raised."""
    driver = os.getpid()

    class DiesInWorker:
        """A latency setting whose first attribute read kills the worker process (never the driver)."""

        def __getattr__(self, name):
            if name.startswith("__") or os.getpid() == driver:
                raise AttributeError(name)
            os._exit(1)

    executor.submit("dies", ProbeTask(to_dict(tiny_graph), DiesInWorker(), 1))
    ((key, result),) = executor.wait()
    assert key == "dies"
    assert not result.ok
    assert "worker failed after 1 retries" in result.reason
    assert "WorkerCrashedError" in result.reason or "died" in result.reason.lower()


def test_a_crashing_remote_function_goes_through_the_error_path(executor, cluster):
    crash = cluster.remote(max_retries=1)(lambda: os._exit(1))
    executor._pending[crash.remote()] = "custom"
    ((key, result),) = executor.wait()
    assert key == "custom" and not result.ok and result.reason.startswith("worker failed")
    assert executor._pending == {}


# -- a search on Ray ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_run(cluster, tmp_path_factory):
    root = tmp_path_factory.mktemp("ray")
    space = write_tiny_space(root)
    cfg = write_protocol(root)
    out = root / "run"
    code = main_one_thread(["search", "--space", str(space), "--config", str(cfg), "--budget", "2", "--seed", "0", "--out", str(out),
                            "--executor", "ray", "--workers", "2", "--no-progress"])
    still_up = ray.is_initialized()
    return code, out, still_up


def test_a_ray_search_finishes_its_budget(ray_run):
    code, out, _ = ray_run
    assert code == 0
    records = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    done = [r for r in records if r["inquired"]]
    assert len(done) == 2
    assert all(r["status"] == "evaluated" for r in done), [r["reason"] for r in done]
    assert all("accuracy" in r["measurements"] and "params" in r["measurements"] for r in done)
    assert len({r["hash"] for r in done}) == 2
    assert (out / "final" / "attendnext.yaml").exists() and (out / "final" / "weights.pt").exists()
    assert yaml.safe_load((out / "config.yaml").read_text())["executor"] == "ray"


def test_a_ray_search_leaves_a_runtime_it_did_not_start(ray_run):
    """The module started Ray before the search; the search's executor must not shut it down."""
    _, _, still_up = ray_run
    assert still_up, "RayExecutor.shutdown() shut down a Ray runtime that the caller had started"
