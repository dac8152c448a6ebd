"""The candidate record: one typed line of ``candidates.jsonl`` per finished candidate, read by every part.

Like Optuna's ``FrozenTrial`` and ``TrialState``: one dataclass with a status
enum and a validation, so the loop, the generator's replay, the storage mirror,
the report and ``gensynth show`` read the same thing. Lines carry
``"version": FORMAT_VERSION``; lines without a version were written before the
record was typed (format 1) and still load, so older runs resume.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

FORMAT_VERSION = 2


class Status(str, Enum):
    """How a candidate ended."""

    EVALUATED = "evaluated"
    """Every evaluation stage ran; it has an objective value (feasible or not)."""
    REJECTED = "rejected"
    """A constraint or a stage stopped it (``rejected_at`` names where)."""
    FAILED = "failed"
    """Building or measuring it failed, or a plugin raised (``reason`` says how)."""
    DUPLICATE = "duplicate"
    """The same architecture (structural hash) as an earlier candidate; nothing was spent on it."""


class RecordError(ValueError):
    """A line of ``candidates.jsonl`` that is not a candidate record."""


@dataclass
class CandidateRecord:
    """One finished candidate.

    ``inquired`` marks candidates that entered evaluation: those count against
    the budget. ``stages`` holds each evaluation stage's own results
    (measurements and seconds), in the order they ran.
    """

    number: int
    hash: str
    status: Status
    genome: dict[str, Any]
    feasible: bool = False
    rejected_at: str = ""
    reason: str = ""
    inquired: bool = False
    score: float | None = None
    values: list[float] | None = None
    violations: dict[str, float] = field(default_factory=dict)
    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    measurements: dict[str, float] = field(default_factory=dict)
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    duplicate_of: int | None = None
    version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        self.status = Status(self.status)
        self._validate()

    def _validate(self) -> None:
        if not isinstance(self.number, int) or isinstance(self.number, bool) or self.number < 0:
            raise RecordError(f"number must be a non-negative integer, got {self.number!r}")
        if not isinstance(self.genome, dict):
            raise RecordError(f"genome must be a mapping, got {type(self.genome).__name__}")
        if self.status is Status.EVALUATED and (self.score is None or self.values is None):
            raise RecordError("an evaluated candidate needs a score and values")
        if self.feasible and self.status is not Status.EVALUATED:
            raise RecordError(f"a {self.status.value} candidate cannot be feasible")
        if self.status is Status.DUPLICATE and self.duplicate_of is None:
            raise RecordError("a duplicate needs duplicate_of")
        numbers = [*(self.values or []), *self.violations.values(), *([self.score] if self.score is not None else [])]
        if any(not isinstance(x, (int, float)) or not math.isfinite(x) for x in numbers):
            raise RecordError("score, values and violations must be finite numbers")

    def to_json(self) -> str:
        data = dataclasses.asdict(self)
        data["status"] = self.status.value
        return json.dumps(data)

    @classmethod
    def from_json(cls, line: str) -> CandidateRecord:
        """Parse one line (format 1 or 2); anything else raises :class:`RecordError`."""
        try:
            data = json.loads(line)
        except json.JSONDecodeError as err:
            raise RecordError(f"not JSON ({err.msg})") from None
        if not isinstance(data, dict):
            raise RecordError(f"expected a JSON object, got {type(data).__name__}")
        version = data.get("version", 1)
        if version not in (1, FORMAT_VERSION):
            raise RecordError(f"format version {version!r} is not one this gensynth reads (1 or {FORMAT_VERSION})")
        if version == 1:
            data = _from_format_1(data)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise RecordError(f"unknown field '{unknown[0]}'")
        try:
            return cls(**data)
        except TypeError as err:
            raise RecordError(str(err)) from None
        except ValueError as err:  # a status that is not one of Status
            raise RecordError(str(err)) from None


def _from_format_1(data: dict[str, Any]) -> dict[str, Any]:
    """Format 1: untyped dicts; rejected candidates carried placeholder values, duplicates their original's."""
    data = dict(data)
    data["version"] = FORMAT_VERSION
    status = data.get("status")
    if status != "evaluated":
        data["values"] = None
    if status == "duplicate":
        reason = str(data.get("reason", ""))
        data["duplicate_of"] = int(reason.rsplit(" ", 1)[-1]) if reason.rsplit(" ", 1)[-1].isdigit() else -1
    if data.get("rejected_at") == "measured":
        data["rejected_at"] = "probe" if "accuracy" not in data.get("measurements", {}) else "train"
    return data
