"""Batch-1 CPU latency of a PyTorch model or an exported ONNX file."""

from __future__ import annotations

import copy
import importlib.util
import math
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .onnx_export import export_onnx


@dataclass
class LatencyReport:
    """Per-inference wall-clock statistics in milliseconds."""

    median_ms: float
    p90_ms: float
    min_ms: float
    iqr_ms: float
    runs: int
    threads: int
    backend: str = "torch"


BACKENDS = ("onnxruntime", "torch")
"""Where latency is timed: onnxruntime's CPU provider on the exported ONNX, or torch eager."""


def resolve_backend(backend: str) -> str:
    """``auto`` is onnxruntime when it is installed (the ``[onnx]`` extra), else torch; other names pass through."""
    if backend != "auto":
        return backend
    found = all(importlib.util.find_spec(name) is not None for name in ("onnxruntime", "onnx"))
    return "onnxruntime" if found else "torch"


def _time(call: Callable[[], object], runs: int, warmup: int) -> tuple[float, float, float, float]:
    """(median, nearest-rank p90, min, interquartile range) in ms of ``runs`` calls after ``warmup`` calls."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive") if runs > 1 else (times[0],) * 3
    return statistics.median(times), times[math.ceil(0.9 * runs) - 1], times[0], q3 - q1


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo, else platform's name for the processor (latency depends on it)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine() or "unknown CPU"


def torch_call(model: nn.Module, input_shape: tuple[int, int, int]) -> Callable[[], torch.Tensor]:
    """One batch-1 inference of an eval-mode copy of ``model`` as deployed on a CPU in torch eager.

    Weights and input are in the channels-last memory format, the layout oneDNN's convolutions
    prefer: the same function, without a layout conversion around every convolution (measured
    in docs/blocks.md, "Where the time goes"). Call it under ``torch.inference_mode()``.
    """
    deployed = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, *input_shape).contiguous(memory_format=torch.channels_last)
    return lambda: deployed(x)


def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    runs: int = 20,
    warmup: int = 5,
    threads: int = 1,
) -> LatencyReport:
    """Time batch-1 eval-mode inference in torch eager (:func:`torch_call`) with ``threads`` intra-op threads."""
    old_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        call = torch_call(model, input_shape)
        with torch.inference_mode():
            stats = _time(call, runs, warmup)
    finally:
        torch.set_num_threads(old_threads)
    return LatencyReport(*stats, runs=runs, threads=threads)


def measure_onnx_latency(
    onnx_path: str | Path,
    input_shape: tuple[int, int, int],
    runs: int = 20,
    warmup: int = 5,
    threads: int = 1,
) -> LatencyReport:
    """Time batch-1 inference of an ONNX file on onnxruntime's CPU provider."""
    try:
        import onnxruntime as ort
    except ImportError as err:
        raise ImportError("onnxruntime is not installed: pip install 'gensynth[onnx]'") from err
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        str(onnx_path), options, providers=["CPUExecutionProvider"]
    )
    feed = {session.get_inputs()[0].name: torch.randn(1, *input_shape).numpy()}
    stats = _time(lambda: session.run(None, feed), runs, warmup)
    return LatencyReport(*stats, runs=runs, threads=threads, backend="onnxruntime")


def measure_deployed_latency(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    backend: str,
    runs: int = 20,
    warmup: int = 5,
    threads: int = 1,
) -> LatencyReport:
    """Batch-1 latency of ``model`` on ``backend``: torch eager, or onnxruntime on its ONNX export (a temporary file)."""
    if backend == "torch":
        return measure_latency(model, input_shape, runs, warmup, threads)
    if backend != "onnxruntime":
        raise ValueError(f"unknown latency backend {backend!r} (expected one of {BACKENDS})")
    with tempfile.TemporaryDirectory(prefix="gensynth-latency-") as tmp:
        path = export_onnx(model, input_shape, Path(tmp) / "model.onnx")
        return measure_onnx_latency(path, input_shape, runs, warmup, threads)
