"""MACs computed on the graph itself, one rule per operation: microseconds instead of a trace.

The search counts every candidate's MACs this way. The rules mirror the modules
in :mod:`gensynth.nn` exactly (``tests/test_cost_analytic.py`` checks them
against fvcore's count of the built model on sampled architectures); fvcore
(:func:`gensynth.cost.count_macs`) remains the reference and what
``gensynth inspect`` reports per layer.
"""
from __future__ import annotations

from typing import Any, Callable

from ..ir.graph import ArchGraph
from ..ir.ops import Shape, spatial_out
from ..nn.blocks import embed_channels

MacRule = Callable[[dict[str, Any], list[Shape], Shape], int]


def _conv(a: dict[str, Any], ins: list[Shape], out: Shape) -> int:
    groups = a["groups"] or ins[0][0]
    return out[0] * out[1] * out[2] * (ins[0][0] // groups) * a["kernel"] ** 2


def _branch(channels: int, out_channels: int, h: int, w: int, condense: int, ratio: float, kernel: int, groups: int, **_: Any) -> int:
    """Condense → 1×1 reduce → grouped k×k embed → 1×1 project, all at the condensed resolution."""
    if condense > 1:
        h, w = spatial_out(h, condense, condense, 0, ceil=True), spatial_out(w, condense, condense, 0, ceil=True)
    mid = embed_channels(channels, ratio, groups)
    per_pixel = channels * mid + mid * (mid // (groups or mid)) * kernel**2 + mid * out_channels
    return h * w * per_pixel


def _prefixed(a: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix):]: v for k, v in a.items() if k.startswith(prefix)}


def _dcac(a: dict[str, Any], ins: list[Shape], out: Shape) -> int:
    c, h, w = ins[0]
    return sum(_branch(c, out[0], h, w, **_prefixed(a, p)) for p in ("f_", "a_"))


def _condenser(a: dict[str, Any], ins: list[Shape], out: Shape) -> int:
    c, h, w = ins[0]
    return _branch(c, c, h, w, a["condense"], a["ratio"], a["kernel"], a["groups"])


def _blurpool(a: dict[str, Any], ins: list[Shape], out: Shape) -> int:
    return out[0] * out[1] * out[2] * a["filter_size"] ** 2


def _classifier(a: dict[str, Any], ins: list[Shape], out: Shape) -> int:
    return ins[0][0] * out[0]


MAC_RULES: dict[str, MacRule] = {
    **{op: _conv for op in ("stem", "conv", "dwconv", "pwconv", "gconv")},
    "dcac": _dcac,
    "attention_condenser": _condenser,
    "blurpool": _blurpool,
    "classifier": _classifier,
}
"""Operations with multiply-accumulates; every other registered op has none (pools, concat, add, ...)."""


def graph_macs(graph: ArchGraph, resolution: int | None = None) -> dict[str, int]:
    """MACs of every node at ``resolution`` (default: the graph's)."""
    shapes = graph.infer_shapes(resolution)
    macs = {}
    for node in graph.order():
        rule = MAC_RULES.get(graph.op(node))
        macs[node] = rule(graph.attrs(node), [shapes[s] for s in graph.inputs(node)], shapes[node]) if rule else 0
    return macs
