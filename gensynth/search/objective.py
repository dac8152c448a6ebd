"""Universal performance functions: NetScore (default), weighted sums, and Pareto fronts.

NetScore (Wong, arXiv 1806.05512): ``Ω = 20·log10(a^α / (p^β · m^γ))`` with
``a`` top-1 accuracy in %, ``p`` parameters in millions, ``m`` MACs in billions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from ..errors import UserError
from ..registry import Registry
from .config import ObjectiveConfig
from .metrics import list_metrics, metric


def netscore(accuracy: float, params: float, macs: float, alpha: float = 2.0, beta: float = 0.5, gamma: float = 0.5) -> float:
    """NetScore of a network with ``accuracy`` % top-1, ``params`` parameters and ``macs`` MACs."""
    a = max(accuracy, 1e-3)
    return 20 * math.log10(a**alpha / ((params / 1e6) ** beta * (macs / 1e9) ** gamma))


@dataclass(frozen=True)
class Objective:
    """What the generator optimises: one or more metrics with their directions, and a scalar score.

    ``requires`` are the measurements ``scalar`` and ``values`` read; a run
    whose stages do not measure them is refused at start.
    """

    name: str
    metrics: tuple[str, ...]
    directions: tuple[str, ...]
    scalar: Callable[[dict[str, float]], float]
    requires: tuple[str, ...]

    @property
    def multi(self) -> bool:
        return len(self.directions) > 1

    @property
    def metric_names(self) -> list[str]:
        """Names of the values told to the sampler (Optuna's metric names)."""
        return [self.name] if not self.multi else list(self.metrics)

    def values(self, measurements: dict[str, float]) -> list[float]:
        """The values told to the sampler (one per direction)."""
        if not self.multi:
            return [self.scalar(measurements)]
        return [measurements[m] for m in self.metrics]

    def placeholder(self) -> list[float]:
        """What the in-memory sampling study hears for a rejected candidate: the worst end of each direction.

        Constrained samplers rank infeasible trials by their violations, not by
        these; they never reach the run's storage.
        """
        return [-1e9 if d == "maximize" else 1e18 for d in self.directions]


ObjectiveFactory = Callable[[ObjectiveConfig], Objective]
OBJECTIVES: Registry[ObjectiveFactory] = Registry("objective", entry_point_group="gensynth.objectives")


def register_objective(name: str, factory: ObjectiveFactory, override: bool = False) -> ObjectiveFactory:
    """Add an objective: ``factory(ObjectiveConfig) -> Objective``."""
    return OBJECTIVES.register(name, factory, override)


def list_objectives(pattern: str = "*") -> list[str]:
    return OBJECTIVES.names(pattern)


def make_objective(config: ObjectiveConfig) -> Objective:
    """The objective named in ``config`` (``netscore``, ``weighted``, ``pareto`` or a registered one)."""
    objective = OBJECTIVES.get(config.name)(config)
    for name in objective.requires:
        metric(name)
    return objective


def _netscore_scalar(config: ObjectiveConfig) -> Callable[[dict[str, float]], float]:
    return lambda m: netscore(m["accuracy"], m["params"], m["macs"], config.alpha, config.beta, config.gamma)


NETSCORE_NEEDS = ("accuracy", "params", "macs")


@OBJECTIVES.decorator("netscore")
def _netscore(config: ObjectiveConfig) -> Objective:
    """NetScore (Wong, arXiv 1806.05512), maximised."""
    return Objective("netscore", ("score",), ("maximize",), _netscore_scalar(config), NETSCORE_NEEDS)


@OBJECTIVES.decorator("weighted")
def _weighted(config: ObjectiveConfig) -> Objective:
    """A weighted sum of metrics, maximised (give costs negative weights)."""
    if not config.weights:
        raise UserError("objective.weights: the weighted objective needs weights, e.g. {accuracy: 1.0, latency_ms: -0.5}")
    _check_metrics(config.weights, "objective.weights")
    weights = dict(config.weights)
    return Objective("weighted", ("score",), ("maximize",), lambda m: sum(w * m[k] for k, w in weights.items()), tuple(weights))


@OBJECTIVES.decorator("pareto")
def _pareto(config: ObjectiveConfig) -> Objective:
    """A Pareto front over ``metrics``, each in its declared direction; the score stays NetScore."""
    _check_metrics(config.metrics, "objective.metrics")
    if len(config.metrics) < 2:
        raise UserError("objective.metrics: a Pareto search needs at least two metrics")
    directions = tuple(metric(m).direction for m in config.metrics)
    needs = tuple(dict.fromkeys([*config.metrics, *NETSCORE_NEEDS]))
    return Objective("pareto", tuple(config.metrics), directions, _netscore_scalar(config), needs)


def _check_metrics(metrics: object, key: str) -> None:
    known = [m for m in list_metrics() if m != "score"]
    unknown = sorted(set(metrics) - set(known))  # type: ignore[arg-type]
    if unknown:
        raise UserError(f"{key}: unknown metric '{unknown[0]}' (expected one of: {', '.join(known)})")


def dominates(a: list[float], b: list[float], directions: tuple[str, ...]) -> bool:
    """Whether ``a`` is at least as good as ``b`` everywhere and better somewhere."""
    signs = [1 if d == "maximize" else -1 for d in directions]
    ge = all(s * x >= s * y for s, x, y in zip(signs, a, b))
    return ge and any(s * x > s * y for s, x, y in zip(signs, a, b))


def pareto_front(points: list[tuple[str, list[float]]], directions: tuple[str, ...]) -> list[str]:
    """Keys of the non-dominated points."""
    return [k for k, v in points if not any(dominates(w, v, directions) for _, w in points)]
