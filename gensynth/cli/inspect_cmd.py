"""``gensynth inspect``: a layer table with output shapes, params and MACs, totals and latency."""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from ..errors import UserError
from ..ir import ArchGraph, GraphError, load
from ..ir.draw import draw_or_dot
from .args import integer

if TYPE_CHECKING:
    from ..inspection import Inspection

MAX_MACS = 10**12
"""The most multiply-accumulates inspect builds and runs (the largest ImageNet networks need ~10**11)."""
MAX_TENSOR_BYTES = 2**31
"""The largest float32 activation tensor inspect builds (batch 1)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="layer table, params, MACs, memory and latency of an architecture file",
        description="Build an architecture graph file and report every layer's output shape, parameters and MACs, "
        "the totals, peak activation memory and batch-1 single-thread latency (timed on the inference form: "
        "batch norm folded, re-parameterised).",
    )
    p.add_argument("graph", type=Path, help="architecture graph file (.yaml or .json)")
    p.add_argument("--resolution", type=integer(1), help="input resolution in px (default: the graph's, 224 for dcac)")
    p.add_argument("--runs", type=integer(0), default=20, help="timed latency runs after warm-up; 0 skips latency (default: 20)")
    p.add_argument("--onnx", action="store_true", help="also time onnxruntime (needs gensynth[onnx])")
    p.add_argument("--draw", type=Path, metavar="FILE", help="also draw the graph (.svg, .png, .pdf with graphviz; .dot text)")
    p.add_argument("--summary", action="store_true", help="totals only, no layer table")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..inspection import inspect_graph

    graph = load(args.graph)
    check_size(graph, args.resolution, args.graph)
    report = inspect_graph(graph, args.resolution, latency_runs=args.runs, onnx=args.onnx)
    console = Console()
    if not args.summary:
        console.print(layer_table(report))
    console.print(totals(report))
    if args.draw:
        try:
            args.draw.parent.mkdir(parents=True, exist_ok=True)
            console.print(drawing(graph, args.draw), soft_wrap=True, markup=False, highlight=False)
        except OSError as err:
            raise UserError(f"--draw {args.draw}: cannot write ({err.strerror or err})") from None
    return 0


def drawing(graph: ArchGraph, path: Path) -> str:
    """Draw ``graph`` to ``path``; without graphviz's ``dot``, as ``.dot`` text beside it, as ``search`` does.

    Returns the one line to print, naming the file written.
    """
    written, note = draw_or_dot(graph, path)
    return f"drew {written}" + (f": {note}" if note else "")


def check_size(graph: ArchGraph, resolution: int | None, path: Path) -> None:
    """Refuse, before building anything, a graph too large to build: shapes and MACs come from the graph alone."""
    from ..cost import graph_macs

    at = f"at {resolution} px" if resolution else "at its resolution"
    try:
        shapes = graph.infer_shapes(resolution)
        macs = sum(graph_macs(graph, resolution).values())
    except GraphError as err:
        raise UserError(f"{path}: {at}: {err}") from None
    node, shape = max(shapes.items(), key=lambda item: math.prod(item[1]))
    if 4 * math.prod(shape) > MAX_TENSOR_BYTES:
        raise UserError(f"{path}: {at}, node '{node}' outputs {'×'.join(map(str, shape))} values, "
                        f"more than the {MAX_TENSOR_BYTES // 2**30} GiB per tensor inspect builds")
    if macs > MAX_MACS:
        raise UserError(f"{path}: {at}, {macs:.3g} MACs, more than the {MAX_MACS:.0e} inspect builds")


def layer_table(report: Inspection) -> Table:
    table = Table("node", "op", "output", "params", "MACs", title=f"{report.name} @ {report.resolution}px")
    for row in report.rows:
        table.add_row(row.name, row.op, "×".join(map(str, row.shape)), f"{row.params:,}", f"{row.macs:,}")
    return table


def totals(report: Inspection) -> str:
    lines = [
        f"hash           {report.structural_hash}",
        f"params         {report.params / 1e6:.3f} M",
        f"MACs           {report.macs / 1e6:.1f} M (conv/linear; other element ops {report.other_ops / 1e6:.1f} M)",
        f"peak memory    {report.peak_activation_bytes / 2**20:.1f} MiB activations (batch 1, fp32)",
    ]
    for lat in (report.latency, report.onnx_latency):
        if lat:
            lines.append(f"latency        {lat.median_ms:.2f} ms median ({lat.backend}, batch 1, {lat.threads} thread, {lat.runs} runs, p90 {lat.p90_ms:.2f})")
    return "\n".join(lines)
