"""``gensynth references list``: the reference zoo, our measured params and MACs beside the canonical and published ones."""
from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from ..ir import load
from ..references import list_references


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("references", help="list the reference architectures", description="List the reference architectures that ship with gensynth.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(p))
    listing = actions.add_parser(
        "list",
        help="the zoo with our params and MACs beside the canonical and published figures",
        description="List the shipped reference architectures at 224x224x3 and 1000 classes: parameters and MACs measured on "
        "our graphs beside the canonical implementation's parameters and the published MACs and ImageNet top-1.",
    )
    listing.set_defaults(run=run_list)


def _versus(ours: int, theirs: int) -> str:
    return f"{ours / 1e6:.2f} M ({ours / theirs - 1:+.1%})"


def run_list(args: argparse.Namespace) -> int:
    from ..cost import count_params, graph_macs
    from ..cost.analytic import attention_product_macs
    from ..nn import build_model

    table = Table(
        "reference", "params (ours)", "params (canonical)", "MACs (ours)", "MACs (published)", "top-1 (published)", "source",
        title="reference zoo: 224x224x3, 1000 classes",
        caption="MACs: conv, linear and matmul multiply-accumulates (docs/references.md); top-1: ImageNet as published, not measured here",
    )
    for info in list_references():
        graph = load(info.path)
        params, macs = count_params(build_model(graph)), sum(graph_macs(graph).values())
        macs_cell = _versus(macs, info.published_macs)
        products = attention_product_macs(graph)
        if products:  # published figures may leave them out: show both
            macs_cell += f"\n{_versus(macs - products, info.published_macs)} without attention products"
        table.add_row(
            info.name, _versus(params, info.canonical_params), f"{info.canonical_params / 1e6:.2f} M",
            macs_cell, f"{info.published_macs / 1e6:.0f} M", f"{info.published_top1:.1f} %", info.source,
        )
    Console(width=200).print(table)
    return 0
