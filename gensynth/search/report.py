"""Summaries of a run's records: leaderboard, rejections per constraint, status counts, Pareto front."""
from __future__ import annotations

from collections import Counter
from typing import Any

from .objective import pareto_front

Record = dict[str, Any]


def leaderboard(records: list[Record], n: int = 10) -> list[Record]:
    """The ``n`` best feasible candidates by score."""
    feasible = [r for r in records if r.get("feasible")]
    return sorted(feasible, key=lambda r: r["score"], reverse=True)[:n]


def rejections(records: list[Record]) -> Counter[str]:
    """How many candidates each constraint rejected (a candidate can count for several)."""
    counts: Counter[str] = Counter()
    for r in records:
        for name, verdict in r.get("verdicts", {}).items():
            if not verdict["satisfied"]:
                counts[name] += 1
    return counts


def status_counts(records: list[Record]) -> Counter[str]:
    return Counter(r["status"] for r in records)


def front(records: list[Record], metrics: tuple[str, ...], directions: tuple[str, ...]) -> list[Record]:
    """Feasible candidates that no other feasible candidate dominates on ``metrics``."""
    feasible = {str(r["number"]): r for r in records if r.get("feasible")}
    points = [(k, [r["measurements"][m] for m in metrics]) for k, r in feasible.items()]
    return [feasible[k] for k in pareto_front(points, directions)]


def row(record: Record) -> dict[str, str]:
    """The leaderboard columns of one record, formatted."""
    m = record["measurements"]
    return {
        "#": str(record["number"]),
        "hash": record["hash"],
        "score": f"{record['score']:.2f}",
        "top-1 %": f"{m.get('accuracy', float('nan')):.2f}",
        "params M": f"{m['params'] / 1e6:.3f}",
        "MACs M": f"{m['macs'] / 1e6:.1f}",
        "latency ms": f"{m.get('latency_ms', float('nan')):.2f}",
    }
