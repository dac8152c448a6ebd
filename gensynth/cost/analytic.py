"""MACs computed on the graph itself, from each op's MAC rule: microseconds instead of a trace.

The search counts every candidate's MACs this way. Each rule is registered with
its op (:class:`gensynth.ir.OpSpec`'s ``macs``; the built-ins' sit beside their
modules in :mod:`gensynth.nn.layers`) and equals fvcore's count of the built
module (``tests/test_cost_analytic.py`` checks sampled architectures); fvcore
(:func:`gensynth.cost.count_macs`) remains the reference and what
``gensynth inspect`` reports per layer.
"""
from __future__ import annotations

from ..ir.graph import ArchGraph, GraphError
from ..ir.ops import OPS
from ..nn import layers  # (importing it attaches the built-in ops' MAC rules)


def graph_macs(graph: ArchGraph, resolution: int | None = None) -> dict[str, int]:
    """MACs of every node at ``resolution`` (default: the graph's).

    An op registered without a MAC rule raises ``GraphError`` naming the node:
    counting it as 0 would let a costly op slip under a MAC budget.
    """
    shapes = graph.infer_shapes(resolution)
    macs = {}
    for node in graph.order():
        op = graph.op(node)
        rule = OPS[op].macs
        if rule is None:
            raise GraphError(f"node '{node}': op '{op}' has no MAC rule (register it with OpSpec(macs=...), no_macs if it has none)")
        macs[node] = rule(graph.attrs(node), [shapes[s] for s in graph.inputs(node)], shapes[node])
    return macs


def attention_product_macs(graph: ArchGraph, resolution: int | None = None) -> int:
    """The MACs of the attention products (q·kᵀ, weights·v) inside ``transformer`` nodes, part of :func:`graph_macs`.

    Published figures may leave them out (MobileViT's does; docs/references.md), so a
    comparison with one needs them apart.
    """
    shapes = graph.infer_shapes(resolution)
    return sum(
        layers.transformer_macs(graph.attrs(node), shapes[graph.inputs(node)[0]])[1] for node in graph.order() if graph.op(node) == "transformer"
    )
