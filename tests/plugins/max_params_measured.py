"""A measured constraint plugin: at most ``limit`` parameters, checked right after the probe."""
from __future__ import annotations

from gensynth.constraint import Candidate, Constraint, Verdict


class ParamCeiling(Constraint):
    """At most ``limit`` parameters at the deployment shape."""

    name = "param_ceiling"
    stage = "measured"
    requires = ("params",)

    def __init__(self, limit: float = 60_000):  # sized for the tests' tiny space
        self.limit = float(limit)

    def check(self, candidate: Candidate) -> Verdict:
        p = candidate.measurements["params"]
        return Verdict.judge(p <= self.limit, f"{p:.0f} params (limit {self.limit:.0f})", (p - self.limit) / self.limit)
