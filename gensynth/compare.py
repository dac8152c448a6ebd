"""Measure architectures side by side (``gensynth compare``): one process, one machine, the same settings for all.

What is measured, per model:

* params of the built (training) form, MACs from the graph's per-op rules, both
  at the model's deployment shape, as the search's probe measures them;
* latency of the inference form (:func:`gensynth.nn.inference_form`) at the
  deployment shape, batch 1, the protocol's latency threads (one), on torch
  eager and on onnxruntime. After a warm-up the models are timed in interleaved
  rounds: each round times every model (and backend) once, ``runs`` calls each,
  so that the machine's drift (clock, other load) hits all of them alike. The
  figure is the median of the round medians, the spread their interquartile range;
* proxy accuracy under the protocol the search uses: the protocol's own training
  stage (same data, proxy resolution, head retargeted to the dataset's classes,
  training budget), once per seed (the protocol's seed, +1, ...; the dataset's
  images stay those of the protocol's seed). Reported: the mean, the sample
  standard deviation over seeds, and the binomial standard error of the
  validation set, ``sqrt(p(1-p)/n)``, which more seeds do not shrink.
"""
from __future__ import annotations

import csv
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Literal

import torch

from .cost import count_params, cpu_model, export_onnx, graph_macs, torch_call
from .data import load_dataset
from .errors import UserError
from .ir import ArchGraph, load
from .nn import build_model, inference_form
from .references import reference_path
from .search.config import LatencyConfig, SearchConfig, load_config, training_threads
from .search.protocol import binomial_se
from .search.stages import EvaluationStage, make_stages
from .space import load_space

COLUMNS = ("model", "kind", "params", "macs", "resolution", "torch_ms", "torch_iqr_ms", "onnx_ms", "onnx_iqr_ms",
           "accuracy", "accuracy_seed_sd", "accuracy_binomial_se", "seeds", "val_images")
"""The CSV's columns; a figure that was not measured is left empty."""


@dataclass(frozen=True)
class Model:
    """One architecture to measure: its ``label`` in the table and plot, and whether it is a reference."""

    label: str
    kind: Literal["candidate", "reference"]
    graph: ArchGraph


@dataclass(frozen=True)
class Spread:
    """Latency over interleaved rounds: the median of the round medians and their interquartile range, in ms."""

    median_ms: float
    iqr_ms: float

    @classmethod
    def of(cls, round_medians: Sequence[float]) -> Spread:
        """The summary of one model's round medians (one round: no spread to report)."""
        if len(round_medians) < 2:
            return cls(round_medians[0], 0.0)
        q1, _, q3 = statistics.quantiles(round_medians, n=4, method="inclusive")
        return cls(statistics.median(round_medians), q3 - q1)


@dataclass
class Row:
    """Everything measured of one model."""

    model: Model
    params: int
    macs: int
    torch: Spread | None = None
    onnx: Spread | None = None
    accuracies: list[float] = field(default_factory=list)
    val_images: int = 0

    @property
    def accuracy(self) -> float | None:
        return statistics.mean(self.accuracies) if self.accuracies else None

    @property
    def seed_sd(self) -> float | None:
        return statistics.stdev(self.accuracies) if len(self.accuracies) > 1 else None

    @property
    def binomial_se(self) -> float | None:
        return binomial_se(self.accuracy, self.val_images) if self.accuracies else None

    def values(self) -> dict[str, float | int | str | None]:
        """The CSV row (:data:`COLUMNS`)."""
        return {"model": self.model.label, "kind": self.model.kind, "params": self.params, "macs": self.macs,
                "resolution": self.model.graph.resolution,
                "torch_ms": self.torch and self.torch.median_ms, "torch_iqr_ms": self.torch and self.torch.iqr_ms,
                "onnx_ms": self.onnx and self.onnx.median_ms, "onnx_iqr_ms": self.onnx and self.onnx.iqr_ms,
                "accuracy": self.accuracy, "accuracy_seed_sd": self.seed_sd, "accuracy_binomial_se": self.binomial_se,
                "seeds": len(self.accuracies) or None, "val_images": self.val_images or None}


@dataclass
class Comparison:
    """The rows, and how they were measured (``setup``: machine, command, latency and accuracy protocols)."""

    rows: list[Row]
    setup: dict[str, str]


# -- what to measure ---------------------------------------------------------------------------------
def load_subject(path: Path, config: str | None = None) -> tuple[Model, SearchConfig, Path]:
    """The model to compare, the protocol to measure under and the default output folder.

    A run directory gives its emitted architecture (``final/attendnext.yaml``) and its
    ``config.yaml``; a graph file is measured under ``config`` (the default protocol if None).
    """
    if path.is_dir():
        if config is not None:
            raise UserError(f"--config: {path} is a run directory, which brings its own protocol (config.yaml)")
        final, protocol = path / "final" / "attendnext.yaml", path / "config.yaml"
        for needed in (protocol, final):
            if not needed.is_file():
                raise UserError(f"{path}: not a finished run directory (no {needed.relative_to(path)})")
        run_config = load_config(protocol, {})
        return Model(run_config.name or path.resolve().name, "candidate", load(final)), run_config, path / "compare"
    if not path.is_file():
        raise UserError(f"{path}: no such graph file or run directory")
    return Model(path.stem, "candidate", load(path)), load_config(config, {}), path.parent / "compare"


def load_references(names: Sequence[str]) -> list[Model]:
    """Zoo names (``mobilenetv3_large``) or graph files, labelled by their file's stem."""
    models = []
    for name in names:
        path = reference_path(name)
        if not path.is_file():
            raise UserError(f"reference {name}: no such graph file")
        models.append(Model(path.stem, "reference", load(path)))
    return models


# -- measuring ---------------------------------------------------------------------------------------
def compare(models: Sequence[Model], config: SearchConfig, *, seeds: int = 2, rounds: int = 10, onnx: bool = True,
            accuracy: bool = True, command: str = "", say: Callable[[str], None] = lambda line: None) -> Comparison:
    """Measure every model under ``config``'s protocol (see the module docstring)."""
    labels = [m.label for m in models]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    if twice:
        raise UserError(f"'{twice[0]}' is named twice among the models to compare (leave it out of --references)")
    if onnx:
        _onnxruntime()  # refused before anything is spent
    trainer = ProxyTrainer(config, seeds) if accuracy else None
    latency = config.latency
    runs = latency.runs or LatencyConfig().runs  # a protocol that skips latency still gets it timed here
    rows: list[Row] = []
    calls: dict[Hashable, Callable[[], object]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in models:
            built = build_model(model.graph)
            rows.append(Row(model, count_params(built), sum(graph_macs(model.graph).values())))
            deployed = inference_form(built)
            calls[model.label, "torch"] = torch_call(deployed, model.graph.input_shape())
            if onnx:
                calls[model.label, "onnx"] = onnx_call(export_onnx(deployed, model.graph.input_shape(), Path(tmp) / f"{len(calls)}.onnx"),
                                                        latency.threads)
        say(f"timing {len(models)} models: warm-up {latency.warmup}, then {rounds} interleaved rounds of {runs} calls each")
        before = torch.get_num_threads()
        torch.set_num_threads(latency.threads)
        try:
            with torch.inference_mode():
                spreads = interleaved_latency(calls, rounds, runs, latency.warmup)
        finally:
            torch.set_num_threads(before)
    for row in rows:
        row.torch, row.onnx = spreads[row.model.label, "torch"], spreads.get((row.model.label, "onnx"))
    setup = {"command": command, "machine": machine(latency.threads),
             "latency": (f"batch 1 at each model's deployment shape, inference form (batch norm folded, re-parameterised; "
                         "channels-last in torch), "
                         f"{latency.threads} thread; warm-up {latency.warmup} calls, then {rounds} interleaved rounds of {runs} calls "
                         "per model and backend; median of the round medians, IQR of the round medians"),
             "costs": "params of the training form; MACs (conv, linear, matmul) from the graph's per-op rules at the deployment shape"}
    if trainer:
        setup["accuracy"] = trainer.train(rows, say)
    return Comparison(rows, setup)


def interleaved_latency(calls: dict[Hashable, Callable[[], object]], rounds: int, runs: int, warmup: int) -> dict[Hashable, Spread]:
    """Warm every call up, then ``rounds`` rounds each timing every call ``runs`` times, in the same order."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    medians: dict[Hashable, list[float]] = {key: [] for key in calls}
    for _ in range(rounds):
        for key, call in calls.items():
            times = []
            for _ in range(runs):
                start = time.perf_counter()
                call()
                times.append((time.perf_counter() - start) * 1e3)
            medians[key].append(statistics.median(times))
    return {key: Spread.of(values) for key, values in medians.items()}


def _onnxruntime() -> ModuleType:
    """The onnxruntime module (an optional dependency: imported only when ONNX is timed)."""
    try:
        import onnxruntime
    except ImportError:
        raise UserError("onnxruntime is not installed: pip install 'gensynth[onnx]', or pass --no-onnx") from None
    return onnxruntime


def onnx_call(path: Path, threads: int) -> Callable[[], object]:
    """One inference of the ONNX file on onnxruntime's CPU provider with ``threads`` intra-op threads."""
    ort = _onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (given,) = session.get_inputs()
    feed = {given.name: torch.randn(1, *given.shape[1:]).numpy()}
    return lambda: session.run(None, feed)


class ProxyTrainer:
    """Proxy training under a protocol's own training stage, once per seed (set up first: mistakes are refused before any timing)."""

    def __init__(self, config: SearchConfig, seeds: int):
        self.config, self.space, t = config, load_space(config.space), config.training
        self.data = load_dataset(config.data, train_limit=t.train_images, val_limit=t.val_images, seed=config.seed)
        self.stages: list[tuple[int, EvaluationStage]] = []
        for seed in range(config.seed, config.seed + seeds):
            stages = make_stages(replace(config, seed=seed), self.space, training_threads(config))  # the run's rounding
            trainers = [stage for stage in stages if "accuracy" in stage.measures]
            if not trainers:
                raise UserError(f"stages {config.stages} measure no accuracy: pass --no-accuracy")
            self.stages.append((seed, trainers[-1]))

    def train(self, rows: list[Row], say: Callable[[str], None]) -> str:
        """Every row's accuracies (one per seed) and validation-set size; returns how they were measured, in words."""
        data = self.data
        for row in rows:
            data.check_channels(row.model.graph.input_channels)
            for seed, stage in self.stages:
                say(f"training {row.model.label}, seed {seed}")
                result = stage.task(row.model.graph)(data)
                if not result.ok:
                    raise UserError(f"{row.model.label}: proxy training failed with seed {seed} ({result.reason})")
                row.accuracies.append(result.measurements["accuracy"])
            row.val_images = len(data.val_y)
        t, proxy = self.config.training, self.space.proxy
        return (f"proxy top-1 on {data.name}: {len(data.train_y)} training and {len(data.val_y)} validation images (chosen by seed "
                f"{self.config.seed}), {data.num_classes} classes; {t.epochs} epoch(s), batch {t.batch_size}, AdamW lr {t.lr:g} weight "
                f"decay {t.weight_decay:g}; graphs adapted as for the search's candidates (head retargeted to the dataset's classes, "
                f"{proxy.resolution} px, first {proxy.skip_reductions} reduction level(s) skipped); stage '{self.stages[0][1].name}' "
                f"with seeds {', '.join(str(seed) for seed, _ in self.stages)}: mean, sample sd over seeds, binomial SE "
                f"sqrt(p(1-p)/n) over the {len(data.val_y)} validation images")


def machine(threads: int) -> str:
    """Platform, CPU model (from /proc/cpuinfo), logical CPUs, and the libraries timing runs on."""
    cpu = cpu_model()
    versions = f"torch {torch.__version__} ({threads} intra-op thread(s) for latency)"
    try:
        versions += f", onnxruntime {_onnxruntime().__version__}"
    except UserError:
        pass  # not installed: nothing was timed on it
    return f"{platform.platform()}, {cpu}, {os.cpu_count()} logical CPUs; {versions}"


# -- reporting ---------------------------------------------------------------------------------------
def cells(row: Row) -> dict[str, str]:
    """One row as the printed and Markdown tables show it."""
    def ms(s: Spread | None) -> str:
        return f"{s.median_ms:.1f} ± {s.iqr_ms / 2:.1f}" if s else "–"

    acc = "–" if row.accuracy is None else f"{row.accuracy:.1f}"
    return {"model": row.model.label, "kind": row.model.kind, "params M": f"{row.params / 1e6:.2f}", "MACs M": f"{row.macs / 1e6:.0f}",
            "px": str(row.model.graph.resolution), "torch ms": ms(row.torch), "ORT ms": ms(row.onnx), "top-1 %": acc,
            "seed sd": "–" if row.seed_sd is None else f"{row.seed_sd:.1f}",
            "SE": "–" if row.binomial_se is None else f"{row.binomial_se:.1f}"}


def write_report(comparison: Comparison, out: Path) -> list[Path]:
    """``compare.csv``, ``compare.md`` and the plot (``compare.png``, ``compare.svg``) in ``out``."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        paths = [out / "compare.csv", out / "compare.md"]
        with open(paths[0], "w", newline="") as f:
            writer = csv.DictWriter(f, COLUMNS)
            writer.writeheader()
            writer.writerows({k: "" if v is None else v for k, v in row.values().items()} for row in comparison.rows)
        paths[1].write_text(markdown(comparison))
        return paths + plot(comparison, out / "compare")
    except OSError as err:
        raise UserError(f"--out {out}: cannot write ({err.strerror or err})") from None


def markdown(comparison: Comparison) -> str:
    """The table under a header that says how every figure was measured."""
    table = [cells(row) for row in comparison.rows]
    setup = {**comparison.setup, "command": f"`{comparison.setup['command']}`"}
    lines = ["# gensynth compare", "", *(f"- **{key}**: {value}" for key, value in setup.items()), "",
             "Latency (torch eager, onnxruntime = ORT): median ± half the IQR over rounds. Top-1: mean over seeds, their "
             "sample sd, and the binomial SE of the validation set (all in percentage points).", "",
             "| " + " | ".join(table[0]) + " |", "|" + "---|" * len(table[0])]
    lines += ["| " + " | ".join(row.values()) + " |" for row in table]
    return "\n".join(lines) + "\n"


def plot(comparison: Comparison, stem: Path) -> list[Path]:
    """Accuracy (MACs without accuracy) against latency, one panel per backend; the references labelled."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    rows = comparison.rows
    accuracy = "accuracy" in comparison.setup
    panels = [(name, title) for name, title in (("torch", "torch eager"), ("onnx", "onnxruntime")) if any(getattr(r, name) for r in rows)]
    fig = Figure(figsize=(5.5 * len(panels), 4.5), layout="constrained")
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (name, title) in zip(axes, panels):
        legend: set[str] = set()
        for row in rows:
            spread, kind = getattr(row, name), row.model.kind
            candidate, y = kind == "candidate", row.accuracy if accuracy else row.macs / 1e6
            ax.errorbar(spread.median_ms, y, xerr=spread.iqr_ms / 2, yerr=row.seed_sd if accuracy else None, capsize=3,
                        fmt="*" if candidate else "o", markersize=14 if candidate else 7, color="C3" if candidate else "C0",
                        label=None if kind in legend else kind)
            legend.add(kind)
            ax.annotate(row.model.label, (spread.median_ms, y), xytext=(6, 5), textcoords="offset points",
                        fontweight="bold" if candidate else "normal")
        ax.set_xlabel(f"latency, ms ({title}, batch 1, inference form)")
        ax.grid(alpha=0.3)
        ax.margins(0.15)
    axes[0].legend(loc="best")
    axes[0].set_ylabel("proxy top-1, % (mean over seeds)" if accuracy else "MACs, millions")
    se = [row.binomial_se for row in rows if row.binomial_se is not None]
    noise = f"; binomial SE of the validation set {min(se):.1f}–{max(se):.1f} pp" if se else ""
    fig.suptitle("Proxy accuracy against latency (better: up and left)" if accuracy else "MACs against latency")
    fig.supxlabel(f"bars: latency IQR over rounds{', top-1 sd over seeds' if accuracy else ''}{noise}", fontsize="small")
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path, dpi=150)
    return paths

