"""Rule 4: beat the reference architectures, measured in the same run with the same protocol.

References are zoo names (``mobilenetv3_large``, see :mod:`gensynth.references`)
or graph files. Each is measured once per run by the run's own evaluation
stages (:meth:`RunContext.measure`: cached in the run directory under the
protocol's fingerprint, re-used on resume, measured again when the protocol
changes), so its figures and the candidates' are taken the same way.

A candidate must be at least as good as every reference on each higher-is-better
metric (accuracy, score: top-1 on a finite validation set is quantised, so a tie
is common and means "as accurate") and strictly better on each lower-is-better
one (latency, params, MACs). With ``val_images`` (by default the size of the
run's validation set), an accuracy difference smaller than two binomial
standard errors of the validation set, ``2·sqrt(p(1-p)/n)``, is called "within
noise" in the verdict's reason; the verdict itself stays the plain comparison.
"""
from __future__ import annotations

from pathlib import Path

from gensynth.constraint import Candidate, Constraint, RunContext, Verdict
from gensynth.errors import UserError
from gensynth.ir.serialize import load
from gensynth.references import reference_path
from gensynth.search.metrics import Metric, list_metrics, metric
from gensynth.search.protocol import binomial_se


class ReferenceBeating(Constraint):
    """The candidate beats each configured reference architecture (zoo name or file) on each configured metric (same run, same protocol)."""

    name = "reference_beating"
    stage = "measured"

    def __init__(self, references: list[str], metrics: tuple[str, ...] | list[str] = ("accuracy", "latency_ms"), val_images: int | None = None):
        if not references:
            raise UserError("reference_beating: 'references' must list at least one architecture file or zoo name")
        unknown = sorted(set(metrics) - set(list_metrics()))
        if unknown:
            raise UserError(f"reference_beating: unknown metric '{unknown[0]}' (expected one of: {', '.join(list_metrics())})")
        if val_images is not None and (isinstance(val_images, bool) or not isinstance(val_images, int) or val_images < 1):
            raise UserError(f"reference_beating: 'val_images' must be an integer >= 1 (the run's training.val_images), got {val_images!r}")
        self.references = [str(r) for r in references]
        self._paths: dict[str, Path] = {}
        for ref in self.references:
            path = reference_path(ref)
            if not path.is_file():
                raise UserError(f"reference_beating: reference architecture file {path} does not exist")
            if path.stem in self._paths:
                raise UserError(f"reference_beating: two references are named '{path.stem}' ({self._paths[path.stem]} and {path})")
            self._paths[path.stem] = path
        self.metrics = tuple(metrics)
        self.requires = self.metrics
        self.val_images = val_images
        self.measured: dict[str, dict[str, float]] = {}

    def prepare(self, context: RunContext) -> None:
        for label, path in self._paths.items():
            self.measured[label] = context.measure(load(path), label)
        if self.val_images is None:
            self.val_images = context.validation_images  # the run's own validation set, when it has one

    def check(self, candidate: Candidate) -> Verdict:
        misses, notes, shortfall = [], [], 0.0
        for ref, values in self.measured.items():
            for name in self.metrics:
                mine, theirs = candidate.measurements[name], values[name]
                comparison = f"{name} {mine:.4g} vs {ref} {theirs:.4g}"
                noise = self._noise(name, mine, theirs)
                if beats(metric(name), mine, theirs):
                    notes += [f"{comparison}: {noise}"] if noise else []
                else:
                    misses.append(f"{comparison} ({noise})" if noise else comparison)
                    shortfall += abs(mine - theirs) / max(abs(theirs), 1e-9)
        if not misses:
            return Verdict(True, "; ".join([f"beats {', '.join(self.measured)} on {', '.join(self.metrics)}", *notes]))
        return Verdict.judge(False, "does not beat: " + "; ".join(misses), shortfall)

    def _noise(self, name: str, mine: float, theirs: float) -> str:
        """'within noise, ...' when two accuracies differ by less than two binomial standard errors, else ''."""
        if name != "accuracy" or self.val_images is None:
            return ""
        se = binomial_se((mine + theirs) / 2, self.val_images)
        return f"within noise, 2 SE = {2 * se:.2g} pp" if abs(mine - theirs) < 2 * se else ""


def beats(m: Metric, mine: float, theirs: float) -> bool:
    """At least as good on a higher-is-better metric, strictly better on a lower-is-better one."""
    return mine >= theirs if m.direction == "maximize" else mine < theirs
