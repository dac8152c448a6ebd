"""Rule 1: columnar early layers."""
from __future__ import annotations

import networkx as nx
from networkx.algorithms.connectivity import local_node_connectivity

from gensynth.constraint import Candidate, Constraint, Verdict
from gensynth.errors import UserError


class Columnar(Constraint):
    """The early network is at least N parallel columns sharing no node between the stem and their merge."""

    name = "columnar"
    stage = "structural"

    def __init__(self, min_columns: int = 4, early_stride: int = 4):
        for key, value in (("min_columns", min_columns), ("early_stride", early_stride)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UserError(f"constraint 'columnar': option '{key}' must be an integer >= 1, got {value!r}")
        self.min_columns, self.early_stride = min_columns, early_stride

    def check(self, candidate: Candidate) -> Verdict:
        graph, shapes = candidate.graph, candidate.shapes
        g = graph.g
        post_dominator = nx.immediate_dominators(g.reverse(copy=False), graph.output_node())
        best, span = 0, ""
        for fork in graph.order():
            if g.out_degree(fork) < 2 or graph.resolution / shapes[fork][1] > self.early_stride:
                continue
            merge = post_dominator[fork]
            paths = g.copy()
            if paths.has_edge(fork, merge):
                paths.remove_edge(fork, merge)
            columns = local_node_connectivity(paths, fork, merge)
            if columns > best:
                best, span = columns, f" between '{fork}' and '{merge}'"
        reason = f"{best} node-disjoint column(s){span} in the early layers (need >= {self.min_columns})"
        return Verdict.judge(best >= self.min_columns, reason, self.min_columns - best)
