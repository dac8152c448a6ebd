"""A layer-by-layer account of an architecture: shapes, params, MACs, memory, latency.

Params, MACs and memory are the built (training) form's; latency, like the
search's, is timed on its inference form (:func:`gensynth.nn.inference_form`).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from .cost import LatencyReport, count_macs, count_params, export_onnx, measure_latency, measure_onnx_latency, peak_activation_bytes
from .ir.graph import ArchGraph
from .ir.ops import Shape
from .nn.builder import build_model, module_name
from .nn.inference import inference_form


@dataclass(frozen=True)
class LayerRow:
    """One graph node: its op, output shape and costs."""

    name: str
    op: str
    shape: Shape
    params: int
    macs: int


@dataclass
class Inspection:
    """Totals and per-layer rows of one architecture at one resolution."""

    name: str
    structural_hash: str
    resolution: int
    num_classes: int
    rows: list[LayerRow]
    params: int
    macs: int
    other_ops: int
    peak_activation_bytes: int
    latency: LatencyReport | None = None
    onnx_latency: LatencyReport | None = None


def inspect_graph(graph: ArchGraph, resolution: int | None = None, latency_runs: int = 20, onnx: bool = False) -> Inspection:
    """Build ``graph`` and measure it; latency is skipped when ``latency_runs`` is 0."""
    model = build_model(graph, resolution).eval()
    shape = graph.input_shape(resolution)
    shapes = graph.infer_shapes(resolution)
    macs = count_macs(model, shape)
    rows = []
    for node in graph.order():
        if graph.op(node) == "input":
            rows.append(LayerRow(node, "input", shapes[node], 0, 0))
            continue
        name = module_name(node)
        rows.append(LayerRow(node, graph.op(node), shapes[node], count_params(model.get_submodule(name)), macs.by_module.get(name, 0)))
    report = Inspection(
        name=graph.name,
        structural_hash=graph.structural_hash(),
        resolution=shape[1],
        num_classes=graph.num_classes,
        rows=rows,
        params=count_params(model),
        macs=macs.macs,
        other_ops=macs.other_ops,
        peak_activation_bytes=peak_activation_bytes(model, shape),
    )
    if latency_runs:
        deployed = inference_form(model)
        report.latency = measure_latency(deployed, shape, runs=latency_runs)
        if onnx:
            with tempfile.TemporaryDirectory() as tmp:
                path = export_onnx(deployed, shape, Path(tmp) / "model.onnx")
                report.onnx_latency = measure_onnx_latency(path, shape, runs=latency_runs)
    return report
