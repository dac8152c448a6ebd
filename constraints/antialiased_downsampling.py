"""Rule 3: anti-aliased downsampling."""
from __future__ import annotations

from gensynth.constraint import Candidate, Constraint, Verdict
from gensynth.ir.graph import ArchGraph
from gensynth.ir.transforms import reductions


def is_low_pass(graph: ArchGraph, node: str) -> bool:
    """A blur-pool with a real filter, an average pool over more than one pixel, or global pooling."""
    op, attrs = graph.op(node), graph.attrs(node)
    if op == "blurpool":
        return attrs["filter_size"] > 1
    if op == "avgpool":
        return attrs["kernel"] > 1
    return op == "global_pool"


class AntialiasedDownsampling(Constraint):
    """Every resolution reduction is a low-pass operator (blur-pool, avg-pool) or directly preceded by one.

    Checked on every path, shortcuts included. Condensation inside an attention
    condenser (pooled, embedded, then expanded back) does not reduce the
    block's output resolution and is not a graph node, so it is exempt.
    """

    name = "antialiased_downsampling"
    stage = "structural"

    def check(self, candidate: Candidate) -> Verdict:
        graph = candidate.graph
        aliased = [
            node for node in reductions(graph)
            if not is_low_pass(graph, node) and not all(is_low_pass(graph, src) for src in graph.inputs(node))
        ]
        if not aliased:
            return Verdict(True, "every reduction is low-pass filtered")
        return Verdict.judge(False, f"reduction without low-pass filter at {', '.join(repr(n) for n in aliased)}", len(aliased))
