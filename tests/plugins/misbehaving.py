"""Constraint plugins that misbehave in every way the engine must survive (tests/test_hardening.py)."""
from __future__ import annotations

from gensynth.constraint import Candidate, Constraint, RunContext, Verdict


class ReturnsWrongType(Constraint):
    """Returns a bool instead of a Verdict."""

    name = "returns_wrong_type"

    def check(self, candidate: Candidate) -> Verdict:
        return True  # type: ignore[return-value]


class ReturnsNaN(Constraint):
    """Returns a Verdict whose violation is NaN (bypassing Verdict's own check)."""

    name = "returns_nan"

    def check(self, candidate: Candidate) -> Verdict:
        verdict = Verdict(True, "")
        object.__setattr__(verdict, "violation", float("nan"))
        object.__setattr__(verdict, "satisfied", False)
        return verdict


class ReturnsNegative(Constraint):
    """Builds a Verdict with a negative violation (Verdict refuses it inside the plugin)."""

    name = "returns_negative"

    def check(self, candidate: Candidate) -> Verdict:
        return Verdict(False, "below zero", -1.0)


class RaisesInInit(Constraint):
    """Raises in __init__."""

    name = "raises_in_init"

    def __init__(self) -> None:
        raise RuntimeError("cannot start")

    def check(self, candidate: Candidate) -> Verdict:
        return Verdict(True, "")


class RaisesInPrepare(Constraint):
    """Raises in prepare."""

    name = "raises_in_prepare"

    def prepare(self, context: RunContext) -> None:
        raise OSError("reference file vanished")

    def check(self, candidate: Candidate) -> Verdict:
        return Verdict(True, "")
