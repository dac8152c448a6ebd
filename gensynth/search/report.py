"""Summaries of a run's records: leaderboard, rejections per constraint, status counts, Pareto front."""
from __future__ import annotations

from collections import Counter

from .metrics import metric
from .objective import pareto_front
from .record import CandidateRecord as Record


def leaderboard(records: list[Record], n: int = 10) -> list[Record]:
    """The ``n`` best feasible candidates by score."""
    feasible = [r for r in records if r.feasible]
    return sorted(feasible, key=lambda r: r.score, reverse=True)[:n]


def rejections(records: list[Record]) -> Counter[str]:
    """How many candidates each constraint rejected (a candidate can count for several)."""
    counts: Counter[str] = Counter()
    for r in records:
        for name, verdict in r.verdicts.items():
            if not verdict["satisfied"]:
                counts[name] += 1
    return counts


def status_counts(records: list[Record]) -> Counter[str]:
    return Counter(r.status.value for r in records)


def front(records: list[Record], metrics: tuple[str, ...], directions: tuple[str, ...]) -> list[Record]:
    """Feasible candidates that no other feasible candidate dominates on ``metrics``."""
    feasible = {str(r.number): r for r in records if r.feasible}
    points = [(k, [r.measurements[m] for m in metrics]) for k, r in feasible.items()]
    return [feasible[k] for k in pareto_front(points, directions)]


COLUMNS = (("accuracy", "top-1 %", 1, ".2f"), ("params", "params M", 1e6, ".3f"), ("macs", "MACs M", 1e6, ".1f"), ("latency_ms", "latency ms", 1, ".2f"))
"""Leaderboard columns: (metric, header, divisor, format); a metric the run did not measure shows as –."""


def row(record: Record, val_images: int | None = None) -> dict[str, str]:
    """The leaderboard columns of one record, formatted; with ``val_images``, top-1 carries its binomial standard error."""
    m = record.measurements
    cells = {"#": str(record.number), "hash": record.hash, "score": f"{record.score:.2f}" if record.score is not None else "–"}
    for name, header, divisor, fmt in COLUMNS:
        metric(name)  # every column is a declared metric
        cells[header] = format(m[name] / divisor, fmt) if name in m else "–"
    if val_images and "accuracy" in m:  # a top-1 on finitely many images: ± its binomial standard error
        from .protocol import binomial_se  # imports torch: not at `gensynth --help` (show's parser imports this module)

        cells["top-1 %"] += f" ± {binomial_se(m['accuracy'], val_images):.2f}"
    if "latency_iqr_ms" in m:  # latency carries its spread: median ± half the interquartile range of the timed runs
        cells["latency ms"] += f" ± {m['latency_iqr_ms'] / 2:.2f}"
    return cells
