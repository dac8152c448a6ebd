"""Graph → ``torch.fx.GraphModule``: one submodule per node, wired as the graph says."""
from __future__ import annotations

import re

import torch
from torch import fx, nn

from ..ir.graph import ArchGraph, GraphError
from ..ir.ops import OPS
from . import layers  # noqa: F401  (attaches the built-in ops' module factories)


def module_name(node: str) -> str:
    """The submodule name of a graph node (dots and other symbols become ``_``)."""
    return re.sub(r"\W", "_", node)


def build_model(graph: ArchGraph, resolution: int | None = None) -> fx.GraphModule:
    """Build ``graph`` for square inputs of ``resolution`` px (default: the graph's).

    The result is a :class:`torch.fx.GraphModule`: traceable, printable as code,
    exportable to ONNX. Its ``node_names`` maps submodule names to graph nodes.
    """
    shapes = graph.infer_shapes(resolution)
    fx_graph = fx.Graph()
    modules: dict[str, nn.Module] = {}
    values: dict[str, fx.Node] = {}
    names: dict[str, str] = {}
    for node in graph.order():
        op = graph.op(node)
        name = module_name(node)
        if name in names:
            raise GraphError(f"node '{node}': its module name '{name}' clashes with node '{names[name]}'")
        names[name] = node
        if op == "input":
            values[node] = fx_graph.placeholder(name)
            continue
        srcs = graph.inputs(node)
        factory = OPS[op].module
        if factory is None:
            raise GraphError(f"node '{node}': op '{op}' has no module factory (register it with OpSpec(module=...))")
        modules[name] = factory(graph.attrs(node), [shapes[s] for s in srcs], shapes[node])
        values[node] = fx_graph.call_module(name, tuple(values[s] for s in srcs))
    fx_graph.output(values[graph.output_node()])
    model = fx.GraphModule(modules, fx_graph, class_name=_class_name(graph.name))
    model.node_names = {name: node for name, node in names.items() if name in modules}
    return model


def _class_name(name: str) -> str:
    cleaned = re.sub(r"\W", "_", name).strip("_") or "Arch"
    return cleaned[0].upper() + cleaned[1:] if not cleaned[0].isdigit() else "Arch_" + cleaned


def output_shape(model: nn.Module, resolution: int, channels: int = 3) -> tuple[int, ...]:
    """Run one batch-2 forward pass in eval mode and return the per-sample output shape."""
    model.eval()
    with torch.no_grad():
        return tuple(model(torch.randn(2, channels, resolution, resolution)).shape[1:])
