"""Universal performance functions: NetScore (default), weighted sums, and Pareto fronts.

NetScore (Wong, arXiv 1806.05512): ``Ω = 20·log10(a^α / (p^β · m^γ))`` with
``a`` top-1 accuracy in %, ``p`` parameters in millions, ``m`` MACs in billions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from ..errors import UserError
from .config import ObjectiveConfig

MAXIMIZED = {"accuracy", "score"}
METRICS = {"accuracy", "params", "macs", "latency_ms"}


def netscore(accuracy: float, params: float, macs: float, alpha: float = 2.0, beta: float = 0.5, gamma: float = 0.5) -> float:
    """NetScore of a network with ``accuracy`` % top-1, ``params`` parameters and ``macs`` MACs."""
    a = max(accuracy, 1e-3)
    return 20 * math.log10(a**alpha / ((params / 1e6) ** beta * (macs / 1e9) ** gamma))


@dataclass(frozen=True)
class Objective:
    """What the generator optimises: one or more values with their directions, and a scalar score."""

    name: str
    metrics: tuple[str, ...]
    directions: tuple[str, ...]
    scalar: Callable[[dict[str, float]], float]

    @property
    def multi(self) -> bool:
        return len(self.directions) > 1

    def values(self, measurements: dict[str, float]) -> list[float]:
        """The values told to Optuna (one per direction)."""
        if not self.multi:
            return [self.scalar(measurements)]
        return [measurements[m] for m in self.metrics]

    def placeholder(self) -> list[float]:
        """Values for candidates that were never measured: the worst end of each direction."""
        return [-1e9 if d == "maximize" else 1e18 for d in self.directions]


def make_objective(config: ObjectiveConfig) -> Objective:
    """The objective named in ``config``: ``netscore``, ``weighted`` or ``pareto``."""

    def score(m: dict[str, float]) -> float:
        return netscore(m["accuracy"], m["params"], m["macs"], config.alpha, config.beta, config.gamma)

    if config.name == "netscore":
        return Objective("netscore", ("score",), ("maximize",), score)
    if config.name == "weighted":
        if not config.weights:
            raise UserError("objective.weights: the weighted objective needs weights, e.g. {accuracy: 1.0, latency_ms: -0.5}")
        _check_metrics(config.weights, "objective.weights")
        weights = dict(config.weights)
        return Objective("weighted", ("score",), ("maximize",), lambda m: sum(w * m[k] for k, w in weights.items()))
    if config.name == "pareto":
        _check_metrics(config.metrics, "objective.metrics")
        if len(config.metrics) < 2:
            raise UserError("objective.metrics: a Pareto search needs at least two metrics")
        directions = tuple("maximize" if m in MAXIMIZED else "minimize" for m in config.metrics)
        return Objective("pareto", tuple(config.metrics), directions, score)
    raise UserError(f"objective.name: unknown objective {config.name!r} (expected one of: netscore, weighted, pareto)")


def _check_metrics(metrics: object, key: str) -> None:
    unknown = sorted(set(metrics) - METRICS)  # type: ignore[arg-type]
    if unknown:
        raise UserError(f"{key}: unknown metric '{unknown[0]}' (expected one of: {', '.join(sorted(METRICS))})")


def dominates(a: list[float], b: list[float], directions: tuple[str, ...]) -> bool:
    """Whether ``a`` is at least as good as ``b`` everywhere and better somewhere."""
    signs = [1 if d == "maximize" else -1 for d in directions]
    ge = all(s * x >= s * y for s, x, y in zip(signs, a, b))
    return ge and any(s * x > s * y for s, x, y in zip(signs, a, b))


def pareto_front(points: list[tuple[str, list[float]]], directions: tuple[str, ...]) -> list[str]:
    """Keys of the non-dominated points."""
    return [k for k, v in points if not any(dominates(w, v, directions) for _, w in points)]
