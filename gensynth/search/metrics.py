"""The table of metrics: every measurement's name, unit, direction and the stage that measures it.

Declared once, read by every part: the objective (which metrics it needs and
their directions), constraints' ``requires`` (refused at start when no stage of
the run measures them), the report, the storage mirror (metric names) and the
generator. A stage or plugin that measures something new registers it here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..registry import Registry

Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class Metric:
    """One measurement: ``stage`` names the evaluation stage that produces it ("objective" for the score)."""

    name: str
    unit: str
    direction: Direction
    stage: str
    description: str

    def __post_init__(self) -> None:
        if self.direction not in ("maximize", "minimize"):
            raise ValueError(f"metric '{self.name}': direction must be 'maximize' or 'minimize', got {self.direction!r}")

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return a > b if self.direction == "maximize" else a < b


METRICS: Registry[Metric] = Registry("metric")


def register_metric(metric: Metric, override: bool = False) -> Metric:
    """Declare a metric (a name already declared raises unless ``override``)."""
    return METRICS.register(metric.name, metric, override)


def metric(name: str) -> Metric:
    """The declared metric ``name`` (an unknown name is a one-line user error)."""
    return METRICS.get(name)


def list_metrics(pattern: str = "*") -> list[str]:
    return METRICS.names(pattern)


for _m in (
    Metric("params", "parameters", "minimize", "probe", "trainable parameters at the deployment shape"),
    Metric("macs", "MACs", "minimize", "probe", "multiply-accumulates of one forward pass at the deployment shape"),
    Metric("latency_ms", "ms", "minimize", "probe", "batch-1 latency of the inference form at the deployment shape (median of the timed runs)"),
    Metric("latency_iqr_ms", "ms", "minimize", "probe", "the interquartile range of those timed runs (latency's spread)"),
    Metric("accuracy", "%", "maximize", "train", "proxy top-1 on the validation images"),
    Metric("train_loss", "", "minimize", "train", "mean loss of the last proxy-training epoch"),
    Metric("score", "", "maximize", "objective", "the objective's scalar (NetScore by default)"),
    # the zero-cost screens (gensynth/search/zero_cost.py), scored at initialisation
    Metric("zc_synflow", "", "maximize", "screen", "SynFlow (Tanaka 2020) as in Abdelfattah 2021: ln of sum |θ·∂L/∂θ|, |θ|, all-ones input, no BN"),
    Metric("zc_naswot", "", "maximize", "screen", "NASWOT (Mellor 2021): log-determinant of the batch's Hamming kernel of activation codes"),
    Metric("zc_jacob_cov", "", "maximize", "screen", "Jacobian covariance (Mellor 2021 v1, as Abdelfattah 2021): eigenvalue score of per-image Jacobians"),
    Metric("zc_grad_norm", "", "maximize", "screen", "gradient norm (Abdelfattah 2021): sum of per-layer L2 norms of the cross-entropy weight gradients"),
    Metric("zc_snip", "", "maximize", "screen", "SNIP (Lee 2019) as in Abdelfattah 2021: sum |θ·∂L/∂θ| with the cross-entropy loss"),
):
    register_metric(_m)
