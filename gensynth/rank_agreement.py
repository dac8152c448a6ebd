"""Rank agreement between probes: Spearman ρ and Kendall τ over the entries both lists hold, seed-to-seed ρ, and what averaging seeds buys."""
from __future__ import annotations

import itertools
import math
import statistics
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Sequence


@dataclass(frozen=True)
class Agreement:
    """Rank agreement of two lists over the ``n`` entries both hold (``None``: fewer than 3, or a constant list)."""

    spearman: float | None
    kendall: float | None
    n: int


def rank_agreement(x: Sequence[float | None], y: Sequence[float | None]) -> Agreement:
    """Spearman ρ and Kendall τ (scipy.stats, tau-b) over the positions where both values are finite numbers."""
    from scipy import stats

    pairs = [(a, b) for a, b in zip(x, y) if finite(a) and finite(b)]
    if len(pairs) < 3:
        return Agreement(None, None, len(pairs))
    xs, ys = zip(*pairs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant list: undefined, reported as None
        rho = stats.spearmanr(xs, ys).statistic
        tau = stats.kendalltau(xs, ys).statistic
    return Agreement(number(rho), number(tau), len(pairs))


def seed_agreement(by_seed: Sequence[Sequence[float | None]]) -> float | None:
    """The mean Spearman ρ over pairs of seeds (lists over the same architectures); ``None`` with one seed or identical lists."""
    if len(by_seed) < 2 or all(list(a) == list(by_seed[0]) for a in by_seed[1:]):
        return None  # deterministic: agreement is 1 by construction, not a measurement
    rhos = [rank_agreement(a, b).spearman for a, b in itertools.combinations(by_seed, 2)]
    return mean([r for r in rhos if r is not None])


def spearman_brown(reliability: float | None, k: float) -> float | None:
    """The predicted reliability of the mean of ``k`` repeats from one repeat's (here: the seed-to-seed ρ).

    The Spearman-Brown prophecy ``k·r / (1 + (k - 1)·r)``: a prediction that assumes the seeds'
    errors are independent and alike, not a measurement.
    """
    if reliability is None or reliability <= 0:
        return None
    return k * reliability / (1 + (k - 1) * reliability)


def repeats_for(reliability: float | None, target: float) -> int | None:
    """The fewest repeats whose mean Spearman-Brown predicts to reach ``target`` (``None`` when one repeat has no reliability)."""
    if reliability is None or reliability <= 0:
        return None
    if reliability >= target:
        return 1
    return math.ceil(target * (1 - reliability) / (reliability * (1 - target)) - 1e-9)


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(value: Any) -> float | None:
    return float(value) if finite(value) else None


def mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.fmean(kept) if kept else None


def mean_of_all(values: Sequence[float | None]) -> float | None:
    """The mean of ``values``; ``None`` when any is missing (a failed seed) or there are none."""
    return statistics.fmean(values) if values and all(v is not None for v in values) else None
