"""Budgets: upper limits on measured costs, checked before any training is spent."""
from __future__ import annotations

from gensynth.constraint import Candidate, Constraint, Verdict
from gensynth.errors import UserError


class _Budget(Constraint):
    stage = "measured"
    measurement: str
    unit: str

    def __init__(self, limit: float):
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or limit <= 0:
            raise UserError(f"constraint '{self.name}': option 'limit' must be a number > 0, got {limit!r}")
        self.limit = float(limit)

    def check(self, candidate: Candidate) -> Verdict:
        value = candidate.measurements[self.measurement]
        reason = f"{self.measurement} {value:.4g}{self.unit} (limit {self.limit:.4g}{self.unit})"
        return Verdict.judge(value <= self.limit, reason, (value - self.limit) / self.limit)


class MaxParams(_Budget):
    """At most ``limit`` parameters (at the deployment shape)."""

    name, measurement, unit, requires = "max_params", "params", "", ("params",)


class MaxMacs(_Budget):
    """At most ``limit`` multiply-accumulates (at the deployment shape)."""

    name, measurement, unit, requires = "max_macs", "macs", "", ("macs",)


class MaxLatency(_Budget):
    """At most ``limit`` ms median batch-1 latency on the measuring machine."""

    name, measurement, unit, requires = "max_latency_ms", "latency_ms", " ms", ("latency_ms",)
