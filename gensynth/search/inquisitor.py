"""The inquisitor's tasks: picklable callables that any executor runs, one per evaluation stage.

* :class:`ProbeTask`: params, MACs (by the graph's per-op rules, which equal
  fvcore's count of the built model) and latency at the deployment shape. Params
  are the built (training) form's; latency is timed on its inference form
  (:func:`gensynth.nn.inference_form`: batch norm folded, re-parameterised,
  exact rewrites), as deployed: in onnxruntime on its ONNX export, or torch
  eager (``latency.backend``), median and interquartile range of the runs. Peak activation memory, a second forward pass, is measured only for
  the emitted winner. It needs no dataset, so the local executor runs it in the
  probe process;
* :class:`TrainTask`: proxy training and validation top-1 on the executor's dataset.

A task is called as ``task(data)`` (``data`` is None for tasks whose
``needs_data`` is False) and never raises: a crash, a diverging loss or running out of memory comes
back as a failed :class:`TaskResult` with its reason, and the search goes on.
"""
from __future__ import annotations

import functools
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator

import torch

from ..cost import count_params, graph_macs, measure_deployed_latency, resolve_backend
from ..cost.latency_table import LatencyTable
from ..data import ProxyDataset
from ..errors import first_line
from ..ir.serialize import from_dict
from ..nn.builder import build_model
from ..nn.inference import inference_form
from ..space.space import ProxyAdaptation
from .config import LatencyConfig, TrainingConfig
from .training import Diverged, proxy_train


@dataclass
class ProbeTask:
    """Measure costs of ``graph`` (a :func:`gensynth.ir.to_dict` mapping) at its deployment shape."""

    graph: dict[str, Any]
    latency: LatencyConfig
    threads: int
    needs_data: ClassVar[bool] = False

    def __call__(self, data: ProxyDataset | None = None) -> TaskResult:
        return probe(self)


@dataclass
class TrainTask:
    """Proxy-train ``graph`` on the dataset the executor provides."""

    graph: dict[str, Any]
    proxy: ProxyAdaptation
    training: TrainingConfig
    seed: int
    threads: int
    needs_data: ClassVar[bool] = True

    def __call__(self, data: ProxyDataset | None = None) -> TaskResult:
        assert data is not None, "a training task needs the executor's dataset"
        return train(self, data)


@dataclass
class TaskResult:
    """Measurements (or the failure reason), seconds spent per part, and trained weights if any.

    ``stopped`` (with ``ok``) is a stage's own reason to end the candidate's
    evaluation, e.g. a screen whose score is too low: it is recorded as rejected.
    """

    ok: bool
    measurements: dict[str, float] = field(default_factory=dict)
    reason: str = ""
    stopped: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    weights: bytes | None = None


def probe(task: ProbeTask) -> TaskResult:
    """Params and MACs of the built (training) form, latency of its inference form; never raises."""
    timings: dict[str, float] = {}
    with torch_threads(task.threads), FailureGuard() as guard:
        start = time.perf_counter()
        graph = from_dict(task.graph)
        model = build_model(graph).eval()
        shape = graph.input_shape()
        measurements = {"params": float(count_params(model)), "macs": float(sum(graph_macs(graph).values()))}
        timings["cost_s"] = time.perf_counter() - start
        if task.latency.runs and task.latency.predict:
            start = time.perf_counter()
            lat = task.latency
            measurements["latency_ms"] = latency_table(resolve_backend(lat.backend), lat.threads, lat.runs, lat.warmup, lat.table).predict(graph).total_ms
            timings["latency_s"] = time.perf_counter() - start
        elif task.latency.runs:
            start = time.perf_counter()
            lat = measure_deployed_latency(inference_form(model), shape, resolve_backend(task.latency.backend), runs=task.latency.runs,
                                           warmup=task.latency.warmup, threads=task.latency.threads)
            measurements |= {"latency_ms": lat.median_ms, "latency_iqr_ms": lat.iqr_ms}
            timings["latency_s"] = time.perf_counter() - start
        return TaskResult(True, measurements, timings=timings)
    return TaskResult(False, reason=guard.reason, timings=timings)


@functools.cache
def latency_table(backend: str, threads: int, runs: int, warmup: int, pinned: str = "") -> LatencyTable:
    """This process's per-node latency table of ``backend`` and ``threads``, over the ``pinned`` one if any (loaded once, then kept)."""
    return LatencyTable(backend, threads, runs=runs, warmup=warmup, pinned=pinned or None)


def train(task: TrainTask, data: ProxyDataset) -> TaskResult:
    """Proxy training and validation top-1; never raises."""
    with torch_threads(task.threads), FailureGuard() as guard:
        start = time.perf_counter()
        result = proxy_train(from_dict(task.graph), data, task.proxy, task.training, task.seed)
        measurements = {"accuracy": result.accuracy, "train_loss": result.train_loss}
        return TaskResult(True, measurements, timings={"train_s": time.perf_counter() - start}, weights=result.weights)
    return TaskResult(False, reason=guard.reason)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run with ``n`` intra-op threads, restoring the previous setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class FailureGuard:
    """Swallow a candidate's failure and keep a one-line reason (divergence, out of memory, crash)."""

    reason = ""

    def __enter__(self) -> FailureGuard:
        return self

    def __exit__(self, kind: type[BaseException] | None, err: BaseException | None, tb: Any) -> bool:
        if err is None or not isinstance(err, Exception):
            return False
        first = first_line(err)
        if isinstance(err, Diverged):
            self.reason = f"diverged: {err}"
        elif isinstance(err, MemoryError) or "out of memory" in str(err).lower():
            self.reason = f"out of memory: {first}"
        else:
            where = traceback.extract_tb(tb)[-1]
            self.reason = f"crashed: {type(err).__name__}: {first} ({where.filename.rsplit('/', 1)[-1]}:{where.lineno})"
        return True
