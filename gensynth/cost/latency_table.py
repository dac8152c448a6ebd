"""Per-node latency prediction: a network's batch-1 latency from a table of one-node networks' latencies.

Each non-input node of a graph is looked up by a :class:`LatencyKey` (op, its
parameters, input and output shapes, backend, threads). A missing entry is
measured once, on a network made of that node alone (:func:`measure_node`: its
op's module factory, its other inputs held as constants), in the inference form
and with the timing routine whole networks are timed with
(:func:`gensynth.cost.latency.measure_deployed_latency`), and kept in a JSON file
per device profile (backend, threads, torch and onnxruntime versions, CPU model).

Every one-node measurement includes the per-call cost of running a network once
(feeding the input, returning the output), which a whole network pays once: the
table records it as ``overhead_ms``, the latency of the smallest network (an
identity on a 1×1×1 input). A prediction is the sum over nodes of (one-node
latency − overhead), each floored at zero, plus the overhead once.

Processes sharing a table file (a search's workers) measure missing entries under
an exclusive lock on it, so each entry is measured once and all predict from the
same values; a *pinned* table (a published run's, ``latency.table``) is read only
and its entries come before the cache's, so a rerun predicts exactly as that run did.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UserError, first_line
from ..files import atomic_write
from ..ir.graph import ArchGraph, GraphError
from ..ir.ops import OPS, Shape
from ..nn import layers  # noqa: F401  (attaches the built-in ops' module factories)
from ..nn.inference import inference_form
from .latency import BACKENDS, cpu_model, measure_deployed_latency, resolve_backend

FORMAT = 1
"""The table file's layout version; a file in another one is refused as damaged."""

OVERHEAD_SHAPE = (1, 1, 1)
"""The input of the smallest network, whose latency is the per-network overhead."""


@dataclass(frozen=True)
class LatencyKey:
    """One table entry: a node's op and parameters (sorted by name), its shapes at batch 1, and the backend and threads timed on."""

    op: str
    params: tuple[tuple[str, Any], ...]
    inputs: tuple[Shape, ...]
    output: Shape
    backend: str
    threads: int

    @classmethod
    def for_node(cls, graph: ArchGraph, node: str, shapes: dict[str, Shape], backend: str, threads: int) -> LatencyKey:
        """The key of ``node`` of ``graph``, given every node's output shape (``graph.infer_shapes()``)."""
        return cls(graph.op(node), tuple(sorted(graph.attrs(node).items())), tuple(tuple(shapes[s]) for s in graph.inputs(node)),
                   tuple(shapes[node]), backend, threads)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable mapping that :meth:`from_json` turns back into an equal key."""
        return {"op": self.op, "params": dict(self.params), "inputs": [list(s) for s in self.inputs], "output": list(self.output),
                "backend": self.backend, "threads": self.threads}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LatencyKey:
        return cls(data["op"], tuple(sorted(data["params"].items())), tuple(tuple(s) for s in data["inputs"]), tuple(data["output"]),
                   data["backend"], data["threads"])


@dataclass(frozen=True)
class LatencyProfile:
    """What must match for a measured latency to be reused: backend, threads, library versions, CPU model."""

    backend: str
    threads: int
    torch: str
    onnxruntime: str | None
    cpu: str

    @classmethod
    def current(cls, backend: str, threads: int) -> LatencyProfile:
        """This machine's profile for ``backend`` (onnxruntime's version only when it is the backend)."""
        return cls(backend, threads, torch.__version__, _onnxruntime_version() if backend == "onnxruntime" else None, cpu_model())

    def file_name(self) -> str:
        """``<backend>-<threads>t-<digest of the whole profile>.json``."""
        digest = hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.backend}-{self.threads}t-{digest}.json"


@dataclass
class LatencyPrediction:
    """A predicted batch-1 latency: the total, each non-input node's share, and the table entries measured now or found cached.

    ``measured`` and ``cached`` count distinct entries, the overhead included.
    """

    total_ms: float
    per_node_ms: dict[str, float]
    overhead_ms: float
    measured: int
    cached: int


def default_dir() -> Path:
    """``$GENSYNTH_CACHE/latency``, else ``~/.cache/gensynth/latency``."""
    root = os.environ.get("GENSYNTH_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "gensynth") / "latency"


class _OneNode(nn.Module):
    """A node's module alone: the network's input on its first port, fixed tensors of the right shapes on the others."""

    def __init__(self, module: nn.Module, others: tuple[Shape, ...]):
        super().__init__()
        self.node = module
        for port, shape in enumerate(others, start=1):
            self.register_buffer(f"port{port}", torch.randn(1, *shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.node(x, *self.buffers(recurse=False))


def measure_node(key: LatencyKey, runs: int = 20, warmup: int = 5) -> float:
    """Median batch-1 latency in ms of the network made of ``key``'s node alone, in the inference form, on its backend.

    The node's module comes from its op's module factory, as the builder makes it; inputs
    after the first are constant tensors held by the network, so it has one input like a
    whole network (in torch they are channels-last, like the input).
    """
    factory = OPS[key.op].module
    if factory is None:
        raise GraphError(f"op '{key.op}' has no module factory (register it with OpSpec(module=...))")
    module = _OneNode(factory(dict(key.params), list(key.inputs), key.output), key.inputs[1:])
    return measure_deployed_latency(inference_form(module), key.inputs[0], key.backend, runs, warmup, key.threads).median_ms


def measure_overhead(backend: str, threads: int, runs: int = 200, warmup: int = 20) -> float:
    """Median latency in ms of the smallest network, an identity on a 1×1×1 input: the cost of running any network once.

    Every prediction depends on it, and a call takes microseconds, so it is timed many times.
    """
    return measure_deployed_latency(nn.Identity(), OVERHEAD_SHAPE, backend, runs, warmup, threads).median_ms


class LatencyTable:
    """Per-node latencies of one device profile, kept in a JSON file (default: one per profile in :func:`default_dir`).

    ``backend`` is ``onnxruntime``, ``torch`` or ``auto`` (:func:`gensynth.cost.resolve_backend`);
    ``runs`` and ``warmup`` are those of each one-node measurement. ``pinned``: a table file of the
    same profile, read only, whose entries (and overhead) take precedence over the cache's, e.g. the
    table a published run predicted from, so that a rerun predicts exactly as it did.
    """

    def __init__(self, backend: str = "auto", threads: int = 1, path: str | Path | None = None, runs: int = 20, warmup: int = 5,
                 pinned: str | Path | None = None):
        backend = resolve_backend(backend)
        if backend not in BACKENDS:
            raise ValueError(f"unknown latency backend {backend!r} (expected one of {BACKENDS})")
        self.profile = LatencyProfile.current(backend, threads)
        self.path = Path(path) if path is not None else default_dir() / self.profile.file_name()
        self.runs, self.warmup = runs, warmup
        self.pinned: dict[LatencyKey, float] = {}
        self.pinned_overhead_ms: float | None = None
        if pinned is not None:
            profile, self.pinned, self.pinned_overhead_ms = read_table(Path(pinned), remedy="")
            self._check_profile(Path(pinned), profile)
        self.entries: dict[LatencyKey, float] = dict(self.pinned)
        self.overhead_ms: float | None = self.pinned_overhead_ms
        if self.path.exists():
            self._load()

    def __len__(self) -> int:
        return len(self.entries)

    def keys(self, graph: ArchGraph) -> dict[str, LatencyKey]:
        """The key of every node of ``graph`` but its input, at its deployment resolution."""
        shapes = graph.infer_shapes()
        return {node: LatencyKey.for_node(graph, node, shapes, self.profile.backend, self.profile.threads)
                for node in graph.order() if graph.op(node) != "input"}

    def predict(self, graph: ArchGraph) -> LatencyPrediction:
        """``graph``'s batch-1 latency in its inference form, measuring (and saving) the entries the table lacks.

        Missing entries are measured under an exclusive lock on the table file, after reading
        what other processes (a search's other workers) saved meanwhile: each entry is measured
        once, and every process predicts from the same values, so the predictions do not depend
        on which worker saw a node first, and a later run with this table repeats them exactly.
        """
        keys = self.keys(graph)
        distinct = set(keys.values())
        measured = 0
        if self.overhead_ms is None or not distinct <= self.entries.keys():
            with self._exclusive():
                if self.path.exists():
                    self._load()
                missing = sorted(distinct - self.entries.keys(), key=_canonical)
                measured = len(missing) + (self.overhead_ms is None)
                if self.overhead_ms is None:
                    self.overhead_ms = measure_overhead(self.profile.backend, self.profile.threads)
                for key in missing:
                    self.entries[key] = measure_node(key, self.runs, self.warmup)
                if measured:
                    self._write()
        assert self.overhead_ms is not None
        per_node = {node: max(self.entries[key] - self.overhead_ms, 0.0) for node, key in keys.items()}
        return LatencyPrediction(sum(per_node.values()) + self.overhead_ms, per_node, self.overhead_ms, measured, len(distinct) + 1 - measured)

    def save(self) -> None:
        """Write the table, keeping the entries another process saved since this one loaded it (theirs win: they were used first)."""
        with self._exclusive():
            if self.path.exists():
                entries, overhead = self._read()
                self.entries = {**self.entries, **entries, **self.pinned}
                self.overhead_ms = next((ms for ms in (self.pinned_overhead_ms, overhead, self.overhead_ms) if ms is not None), None)
            self._write()

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold an exclusive ``flock`` on ``<table>.lock`` (the kernel drops it if this process dies)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self) -> None:
        """Write the table atomically (a temporary file beside it, then a rename)."""
        data = {"format": FORMAT, "profile": asdict(self.profile), "overhead_ms": self.overhead_ms,
                "entries": [{"key": key.to_json(), "ms": ms} for key, ms in sorted(self.entries.items(), key=lambda kv: _canonical(kv[0]))]}
        atomic_write(self.path, json.dumps(data).encode())

    def _load(self) -> None:
        """The cache file's entries, with the pinned ones over them."""
        entries, overhead = self._read()
        self.entries = {**entries, **self.pinned}
        self.overhead_ms = self.pinned_overhead_ms if self.pinned_overhead_ms is not None else overhead

    def _read(self) -> tuple[dict[LatencyKey, float], float | None]:
        """The cache file's entries and overhead; one of another profile is a one-line error naming it."""
        profile, entries, overhead = read_table(self.path)
        self._check_profile(self.path, profile)
        return entries, overhead

    def _check_profile(self, path: Path, profile: LatencyProfile) -> None:
        if profile != self.profile:
            raise UserError(f"{path}: a latency table of another profile ({profile}), not this one ({self.profile})")


def read_table(path: Path, remedy: str = "remove it to measure again") -> tuple[LatencyProfile, dict[LatencyKey, float], float | None]:
    """A table file's profile, entries and overhead; a damaged file is a one-line error naming it (and ``remedy``)."""
    try:
        data = json.loads(path.read_text())
        if data["format"] != FORMAT:
            raise ValueError(f"format {data['format']!r}, expected {FORMAT}")
        profile = LatencyProfile(**data["profile"])
        entries = {LatencyKey.from_json(entry["key"]): float(entry["ms"]) for entry in data["entries"]}
        overhead = data["overhead_ms"]
        overhead = None if overhead is None else float(overhead)
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, AttributeError) as err:
        reason = f"no {err}" if isinstance(err, KeyError) else first_line(err)
        raise UserError(f"{path}: damaged latency table ({reason})" + (f"; {remedy}" if remedy else "")) from None
    except OSError as err:
        raise UserError(f"{path}: cannot read the latency table ({err.strerror or first_line(err)})") from None
    return profile, entries, overhead


def _canonical(key: LatencyKey) -> str:
    return json.dumps(key.to_json(), sort_keys=True)


def _onnxruntime_version() -> str:
    try:
        import onnxruntime
    except ImportError as err:
        raise ImportError("onnxruntime is not installed: pip install 'gensynth[onnx]'") from err
    return onnxruntime.__version__
