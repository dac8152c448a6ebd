"""Rule 2: no strided point-wise convolutions."""
from __future__ import annotations

from gensynth.constraint import Candidate, Constraint, Verdict
from gensynth.ir.ops import OPS


class PointwiseStrided(Constraint):
    """No 1×1 convolution with stride > 1 anywhere, shortcuts included (it drops 3 of 4 pixels)."""

    name = "pointwise_strided"
    stage = "structural"

    def check(self, candidate: Candidate) -> Verdict:
        graph = candidate.graph
        offenders = [
            node for node in graph.order()
            if "conv" in OPS[graph.op(node)].tags and graph.attrs(node)["kernel"] == 1 and graph.attrs(node)["stride"] > 1
        ]
        if not offenders:
            return Verdict(True, "no strided 1×1 convolution")
        return Verdict.judge(False, f"strided 1×1 convolution at {', '.join(repr(n) for n in offenders)}", len(offenders))
