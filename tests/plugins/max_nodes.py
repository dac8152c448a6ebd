"""A structural constraint plugin: at most ``limit`` operations in the architecture graph."""
from __future__ import annotations

from gensynth.constraint import Candidate, Constraint, Verdict
from gensynth.errors import UserError


class MaxNodes(Constraint):
    """At most ``limit`` nodes (operations) in the architecture graph."""

    name = "max_nodes"
    stage = "structural"

    def __init__(self, limit: int = 40):
        if not isinstance(limit, int) or limit < 1:
            raise UserError(f"max_nodes: 'limit' must be a positive integer, got {limit!r}")
        self.limit = limit

    def check(self, candidate: Candidate) -> Verdict:
        n = len(candidate.graph)
        reason = f"{n} nodes (limit {self.limit})"
        return Verdict.judge(n <= self.limit, reason, (n - self.limit) / self.limit)
