"""Rule 4: beat the reference architectures, measured in the same run with the same protocol."""
from __future__ import annotations

from pathlib import Path

from gensynth.constraint import Candidate, Constraint, RunContext, Verdict
from gensynth.errors import UserError
from gensynth.ir.serialize import load
from gensynth.search.metrics import list_metrics, metric


class ReferenceBeating(Constraint):
    """The candidate beats each configured reference architecture on each configured metric (same run, same protocol)."""

    name = "reference_beating"
    stage = "measured"

    def __init__(self, references: list[str], metrics: tuple[str, ...] | list[str] = ("accuracy", "latency_ms")):
        if not references:
            raise UserError("reference_beating: 'references' must list at least one architecture file")
        unknown = sorted(set(metrics) - set(list_metrics()))
        if unknown:
            raise UserError(f"reference_beating: unknown metric '{unknown[0]}' (expected one of: {', '.join(list_metrics())})")
        self.references = [Path(r) for r in references]
        missing = [str(p) for p in self.references if not p.is_file()]
        if missing:
            raise UserError(f"reference_beating: reference architecture file {missing[0]} does not exist")
        self.metrics = tuple(metrics)
        self.requires = self.metrics
        self.measured: dict[str, dict[str, float]] = {}

    def prepare(self, context: RunContext) -> None:
        for path in self.references:
            self.measured[path.stem] = context.measure(load(path), path.stem)

    def check(self, candidate: Candidate) -> Verdict:
        misses, shortfall = [], 0.0
        for ref, values in self.measured.items():
            for name in self.metrics:
                mine, theirs = candidate.measurements[name], values[name]
                if not metric(name).better(mine, theirs):
                    misses.append(f"{name} {mine:.4g} vs {ref} {theirs:.4g}")
                    shortfall += abs(mine - theirs) / max(abs(theirs), 1e-9)
        if not misses:
            return Verdict(True, f"beats {', '.join(self.measured)} on {', '.join(self.metrics)}")
        return Verdict.judge(False, "does not beat: " + "; ".join(misses), shortfall)
