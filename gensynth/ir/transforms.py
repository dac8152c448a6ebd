"""Graph rewrites: the proxy-training adaptation and resolution bookkeeping."""
from __future__ import annotations

import math

from .graph import ArchGraph

_POOLS = ("avgpool", "maxpool")


def reductions(graph: ArchGraph, resolution: int | None = None) -> dict[str, int]:
    """Nodes that reduce resolution, with the reduction level of their input (0 = full resolution)."""
    shapes = graph.infer_shapes(resolution)
    full = graph.input_shape(resolution)[1]
    found = {}
    for node in graph.order():
        srcs = graph.inputs(node)
        if not srcs or len(shapes[node]) != 3 or graph.op(node) == "global_pool":
            continue
        in_res = shapes[srcs[0]][1]
        if shapes[node][1] < in_res:
            found[node] = round(math.log2(full / in_res))
    return found


def for_proxy(graph: ArchGraph, skip_reductions: int) -> ArchGraph:
    """A copy of ``graph`` whose first ``skip_reductions`` resolution levels keep full resolution.

    Proxy training runs on small images (e.g. 32 px); a network built for 224 px
    with total stride 32 would leave 1×1 maps. Every reducing node whose input
    sits at a level below ``skip_reductions`` gets stride 1 (pools also kernel 1,
    i.e. identity), in every column alike, so shapes stay consistent. The
    weights are unchanged: a proxy-trained state dict loads into the full model.
    """
    proxy = graph.copy()
    for node, level in reductions(graph).items():
        if level < skip_reductions:
            proxy.g.nodes[node]["stride"] = 1
            if graph.op(node) in _POOLS:
                proxy.g.nodes[node]["kernel"] = 1
    return proxy
