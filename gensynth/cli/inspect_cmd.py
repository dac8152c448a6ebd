"""``gensynth inspect``: a layer table with output shapes, params and MACs, totals and latency."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from rich.console import Console
from rich.table import Table

from ..inspection import Inspection, inspect_graph
from ..ir import draw, load


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "inspect",
        help="layer table, params, MACs, memory and latency of an architecture file",
        description="Build an architecture graph file and report every layer's output shape, parameters and MACs, "
        "the totals, peak activation memory and batch-1 single-thread latency.",
    )
    p.add_argument("graph", type=Path, help="architecture graph file (.yaml or .json)")
    p.add_argument("--resolution", type=at_least(1), help="input resolution in px (default: the graph's, 224 for dcac)")
    p.add_argument("--runs", type=at_least(0), default=20, help="timed latency runs after warm-up; 0 skips latency (default: 20)")
    p.add_argument("--onnx", action="store_true", help="also time onnxruntime (needs gensynth[onnx])")
    p.add_argument("--draw", type=Path, metavar="FILE", help="also draw the graph (.svg, .png, .pdf with graphviz; .dot text)")
    p.add_argument("--summary", action="store_true", help="totals only, no layer table")
    p.set_defaults(run=run)


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


def run(args: argparse.Namespace) -> int:
    graph = load(args.graph)
    report = inspect_graph(graph, args.resolution, latency_runs=args.runs, onnx=args.onnx)
    console = Console()
    if not args.summary:
        console.print(layer_table(report))
    console.print(totals(report))
    if args.draw:
        args.draw.parent.mkdir(parents=True, exist_ok=True)
        console.print(f"drew {draw(graph, args.draw)}")
    return 0


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
