"""The constraint engine: runs each stage's constraints on a candidate and collects verdicts.

A plugin that raises does not stop the search: the candidate is marked failed
with the plugin's name and error.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from ..constraint import Candidate, Constraint, Stage, Verdict
from ..errors import UserError


@dataclass(frozen=True)
class Judgement:
    """The verdicts of one pass, and the first plugin error if a plugin raised."""

    verdicts: dict[str, dict[str, Any]]
    error: str = ""

    @property
    def feasible(self) -> bool:
        return not self.error and all(v["satisfied"] for v in self.verdicts.values())


def _checked(verdict: object) -> Verdict:
    """A plugin's return value, checked: a :class:`Verdict` with a finite violation >= 0."""
    if not isinstance(verdict, Verdict):
        raise TypeError(f"check() returned {type(verdict).__name__}, expected a gensynth.constraint.Verdict")
    if not isinstance(verdict.violation, (int, float)) or not math.isfinite(verdict.violation) or verdict.violation < 0:
        raise ValueError(f"check() returned violation {verdict.violation!r}, expected a finite number >= 0")
    return verdict


class ConstraintEngine:
    """The run's constraints, checked stage by stage."""

    def __init__(self, constraints: list[Constraint]):
        names = [c.name for c in constraints]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise UserError(f"constraint '{duplicates[0]}' is configured twice (it is in the default list unless 'constraints' is set)")
        self.constraints = constraints

    def of_stage(self, stage: Stage) -> list[Constraint]:
        return [c for c in self.constraints if c.stage == stage]

    def judge(self, candidate: Candidate, stage: Stage, skip: set[str] = frozenset()) -> Judgement:
        """Check every ``stage`` constraint not in ``skip`` whose required measurements exist."""
        verdicts: dict[str, dict[str, Any]] = {}
        for constraint in self.of_stage(stage):
            if constraint.name in skip or not set(constraint.requires) <= set(candidate.measurements):
                continue
            try:
                verdict = _checked(constraint.check(candidate))
            except Exception as err:  # a user's plugin: report it, keep searching
                message = f"constraint '{constraint.name}' raised {type(err).__name__}: {err} on candidate {candidate.hash}"
                return Judgement(verdicts, message)
            except BaseException as err:  # SystemExit and the like from a plugin must not end the search either
                if isinstance(err, KeyboardInterrupt):
                    raise
                return Judgement(verdicts, f"constraint '{constraint.name}' raised {type(err).__name__} on candidate {candidate.hash}")
            verdicts[constraint.name] = {"stage": stage, **asdict(verdict)}
        return Judgement(verdicts)

    def violations(self, verdicts: dict[str, dict[str, Any]]) -> dict[str, float]:
        """Every constraint's violation (unchecked ones count 0), as told to Optuna."""
        return {c.name: float(verdicts.get(c.name, {}).get("violation", 0.0)) for c in self.constraints}
