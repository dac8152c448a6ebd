"""Constraint plugins that raise, to show that a broken plugin fails one candidate, not the search."""
from __future__ import annotations

from gensynth.constraint import Candidate, Constraint, Verdict


class ExplodesOnce(Constraint):
    """Raises on the first candidate it sees, then accepts everything."""

    name = "explodes_once"
    stage = "structural"

    def __init__(self) -> None:
        self.calls = 0

    def check(self, candidate: Candidate) -> Verdict:
        self.calls += 1
        if self.calls == 1:
            raise ZeroDivisionError("kaboom on the first candidate")
        return Verdict(True, "fine")


class AlwaysExplodes(Constraint):
    """A measured plugin that raises whenever it is checked (after the probe: params exist)."""

    name = "always_explodes"
    stage = "measured"
    requires = ("params",)

    def check(self, candidate: Candidate) -> Verdict:
        raise KeyError("no such measurement: 'flops'")
