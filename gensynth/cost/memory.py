"""Peak activation memory by liveness analysis over a torch.fx graph.

An estimate of eager batch-1 inference with immediate freeing: every node's
output is allocated when the node runs (while its inputs are still alive) and
freed after its last user; the input is an activation like any other.  The
model -- a ``GraphModule`` included -- is re-traced with ``fx.symbolic_trace``,
so custom blocks are opened up, while ``torch.nn`` leaf modules (``Conv2d``,
``BatchNorm2d``, ...) are single ops whose internal temporaries are not seen.
Views and in-place ops count as fresh allocations; parameters and buffers are
not activations.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp, TensorMetadata


def _bytes(meta: Any) -> int:
    """Bytes of the tensor(s) described by a node's ``tensor_meta``."""
    if isinstance(meta, TensorMetadata):
        return meta.shape.numel() * meta.dtype.itemsize
    if isinstance(meta, (list, tuple)):
        return sum(_bytes(m) for m in meta)
    if isinstance(meta, dict):
        return sum(_bytes(m) for m in meta.values())
    return 0


_ACTIVATION_OPS = {"placeholder", "call_module", "call_function", "call_method"}


def peak_activation_bytes(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Peak bytes of live activations during one ``(C, H, W)`` eval forward pass."""
    was_training = model.training
    model.eval()
    try:
        graph_module = fx.symbolic_trace(model)
        with torch.no_grad():
            ShapeProp(graph_module).propagate(torch.randn(1, *input_shape))
    finally:
        model.train(was_training)

    nodes = [n for n in graph_module.graph.nodes if n.op in _ACTIVATION_OPS]
    order = {node: index for index, node in enumerate(nodes)}
    freed_at: dict[int, list[fx.Node]] = {}
    for node in nodes:
        last = max((order[u] for u in node.users if u in order), default=order[node])
        freed_at.setdefault(last, []).append(node)

    live = peak = 0
    for index, node in enumerate(nodes):
        live += _bytes(node.meta.get("tensor_meta"))
        peak = max(peak, live)
        live -= sum(_bytes(dead.meta.get("tensor_meta")) for dead in freed_at.get(index, []))
    return peak
