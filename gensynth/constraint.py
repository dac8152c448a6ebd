"""The constraint plugin API: a constraint judges a candidate and says by how much it misses.

A constraint has a ``name``, a ``stage`` and a :meth:`Constraint.check` that
returns a :class:`Verdict`. ``structural`` constraints see only the graph and
run before any cost is spent; ``measured`` ones see the inquisitor's
measurements. The violation (>= 0, 0 when satisfied) goes back to the
generator as Optuna's constraint value, so it learns where the feasible
region is instead of only being refused.

A minimal plugin::

    from gensynth.constraint import Constraint, Verdict

    class MaxDepth(Constraint):
        '''At most ``limit`` nodes in the graph.'''
        name = "max_depth"
        stage = "structural"

        def __init__(self, limit: int = 80):
            self.limit = limit

        def check(self, candidate):
            n = len(candidate.graph)
            return Verdict.judge(n <= self.limit, f"{n} nodes (limit {self.limit})", n - self.limit)
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal

from .ir.graph import ArchGraph

if TYPE_CHECKING:
    from .ir.ops import Shape

Stage = Literal["structural", "measured"]
STAGES: tuple[Stage, ...] = ("structural", "measured")


@dataclass(frozen=True)
class Verdict:
    """A constraint's judgement: satisfied or not, why, and by how much it is violated (>= 0)."""

    satisfied: bool
    reason: str = ""
    violation: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.violation, (int, float)) or not math.isfinite(self.violation) or self.violation < 0:
            raise ValueError(f"violation must be a finite number >= 0, got {self.violation!r}")

    @classmethod
    def judge(cls, satisfied: bool, reason: str, violation: float) -> Verdict:
        """Satisfied → violation 0; otherwise at least a small positive violation."""
        return cls(True, reason, 0.0) if satisfied else cls(False, reason, max(float(violation), 1e-6))


@dataclass
class Candidate:
    """What a constraint sees: the genome, its graph, and (measured stage) the measurements."""

    genome: dict[str, Any]
    graph: ArchGraph
    hash: str
    measurements: dict[str, float] = field(default_factory=dict)
    _shapes: dict[str, Shape] | None = field(default=None, repr=False)

    @property
    def shapes(self) -> dict[str, Shape]:
        """Inferred output shape of every node at the deployment resolution (computed once)."""
        if self._shapes is None:
            self._shapes = self.graph.infer_shapes()
        return self._shapes


@dataclass
class RunContext:
    """What :meth:`Constraint.prepare` may use: measuring other architectures with the run's protocol."""

    measure: Callable[[ArchGraph, str], dict[str, float]]
    """``measure(graph, label)`` → measurements, cached in the run directory by label and hash."""
    validation_images: int | None = None
    """How many images the run's accuracy is measured on (its binomial noise), when it has a dataset."""


class Constraint(ABC):
    """Base class of every constraint; subclasses set ``name`` and ``stage`` and implement ``check``."""

    name: ClassVar[str]
    stage: ClassVar[Stage] = "structural"
    requires: ClassVar[tuple[str, ...]] = ()
    """Measurements a measured constraint reads; it is checked as soon as they exist (before training
    when it needs only params/MACs/latency)."""

    def prepare(self, context: RunContext) -> None:
        """Called once before the search starts (e.g. to measure reference architectures)."""

    @abstractmethod
    def check(self, candidate: Candidate) -> Verdict:
        """Judge ``candidate``."""

    @classmethod
    def describe(cls) -> str:
        """The first line of the class docstring."""
        return (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.stage})"
