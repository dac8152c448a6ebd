"""The report's plots: one small function per figure, drawn on a bare matplotlib ``Figure``.

No pyplot: a ``Figure`` made directly has no global state (no current figure,
no backend switch, nothing to close), so a search that writes its report
leaves matplotlib as it found it. Axis labels, units and directions come from
the metrics table.
"""
from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

from ..search.metrics import Metric, metric
from ..search.protocol import binomial_se
from ..search.record import CandidateRecord, Status
from ..search.report import front

SIZE = (8.0, 4.2)
LINESTYLES = ("-", "--", ":", "-.")
"""Cycled so that rules which always break together (equal counts) stay visible."""


def axis_label(m: Metric) -> str:
    better = "higher" if m.direction == "maximize" else "lower"
    return f"{m.name}" + (f" ({m.unit})" if m.unit else "") + f", {better} is better"


def by_number(records: list[CandidateRecord]) -> list[CandidateRecord]:
    """Records in candidate-number order (the file is in the order candidates finished)."""
    return sorted(records, key=lambda r: r.number)


def best_score(records: list[CandidateRecord]) -> Figure:
    """Every feasible candidate's score, and the best so far, over candidate numbers."""
    fig = Figure(figsize=SIZE, layout="constrained")
    ax = fig.add_subplot()
    feasible = [r for r in by_number(records) if r.feasible]
    score = metric("score")
    best: list[float] = []
    for r in feasible:
        best.append(r.score if not best or score.better(r.score, best[-1]) else best[-1])
    ax.scatter([r.number for r in feasible], [r.score for r in feasible], s=12, color="#9bb7d4", label="feasible candidate")
    ax.step([r.number for r in feasible], best, where="post", color="#1f4e79", label="best so far")
    ax.set_xlabel("candidate number")
    ax.set_ylabel(axis_label(score))
    _legend(fig)
    return fig


def outcomes(records: list[CandidateRecord]) -> Figure:
    """Cumulative counts over candidate numbers: feasible, rejected by each rule, stopped by a stage, failed."""
    fig = Figure(figsize=SIZE, layout="constrained")
    ax = fig.add_subplot()
    ordered = by_number(records)
    series: dict[str, list[int]] = {"feasible": [int(r.feasible) for r in ordered]}
    for i, r in enumerate(ordered):
        broken = [name for name, v in r.verdicts.items() if not v["satisfied"]]
        labels = [f"rejected by {name}" for name in broken]
        if r.status is Status.REJECTED and not broken:
            labels.append(f"stopped by stage {r.rejected_at}")
        if r.status is Status.FAILED:
            labels.append("failed")
        for label in labels:
            series.setdefault(label, [0] * len(ordered))[i] = 1
    numbers = [r.number for r in ordered]
    for k, (label, hits) in enumerate(series.items()):
        running = [sum(hits[: i + 1]) for i in range(len(hits))]
        ax.step(numbers, running, where="post", linestyle=LINESTYLES[k % len(LINESTYLES)], label=f"{label} ({running[-1]})")
    ax.set_xlabel("candidate number")
    ax.set_ylabel("candidates so far")
    _legend(fig)
    return fig


def accuracy_against(records: list[CandidateRecord], cost: str, references: dict[str, dict[str, float]], val_images: int | None) -> Figure:
    """Accuracy against the metric ``cost``: candidates, their Pareto front, references; error bars of ±1 SE where known."""
    fig = Figure(figsize=SIZE, layout="constrained")
    ax = fig.add_subplot()
    acc, x = metric("accuracy"), metric(cost)
    measured = [r for r in records if "accuracy" in r.measurements and cost in r.measurements]
    for feasible, style in ((False, {"facecolors": "none", "edgecolors": "#aaaaaa", "label": "infeasible"}),
                            (True, {"color": "#9bb7d4", "label": "feasible"})):
        chosen = [r for r in measured if r.feasible == feasible]
        if chosen:
            ax.scatter([r.measurements[cost] for r in chosen], [r.measurements["accuracy"] for r in chosen], s=14, **style)
    members = sorted(front(measured, ("accuracy", cost), (acc.direction, x.direction)), key=lambda r: r.measurements[cost])
    if members:
        xs, ys = [r.measurements[cost] for r in members], [r.measurements["accuracy"] for r in members]
        ax.errorbar(xs, ys, yerr=[binomial_se(y, val_images) for y in ys] if val_images else None, color="#1f4e79",
                    marker="o", markersize=5, capsize=3, label="Pareto front (feasible)")
    marked = {label: values for label, values in references.items() if "accuracy" in values and cost in values}
    for i, (label, values) in enumerate(marked.items()):
        a = values["accuracy"]
        ax.errorbar([values[cost]], [a], yerr=[binomial_se(a, val_images)] if val_images else None, color="#c0392b", marker="*",
                    markersize=12, capsize=3, linestyle="none", label="reference" if i == 0 else None)
        ax.annotate(label, (values[cost], a), textcoords="offset points", xytext=(6, 6), color="#c0392b")
    ax.xaxis.set_major_formatter(EngFormatter())
    ax.set_xlabel(axis_label(x))
    ax.set_ylabel(axis_label(acc))
    _legend(fig)
    return fig


def _legend(fig: Figure) -> None:
    """Beside the axes, never over a point (constrained layout makes room)."""
    fig.legend(loc="outside right upper", fontsize="small")


def save(fig: Figure, folder: Path, stem: str) -> bytes:
    """Write ``stem.png`` and ``stem.svg`` into ``folder``; return the PNG's bytes (the page embeds them)."""
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=110)
    (folder / f"{stem}.png").write_bytes(png.getvalue())
    fig.savefig(folder / f"{stem}.svg", format="svg", metadata={"Date": None})
    return png.getvalue()
