"""``gensynth constraints list``: every constraint found, its one-line doc and where it came from."""
from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from ..plugins import installed_constraints, resolve


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("constraints", help="list constraint plugins", description="List constraint plugins.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(p))
    listing = actions.add_parser("list", help="every constraint found, with its doc and origin",
                                 description="List the constraints registered under the 'gensynth.constraints' entry-point group, "
                                 "plus any given as path/to/file.py:ClassName.")
    listing.add_argument("extra", nargs="*", metavar="FILE.py:CLASS", help="also load these plugin files")
    listing.set_defaults(run=run_list)


def run_list(args: argparse.Namespace) -> int:
    table = Table("name", "stage", "doc", "origin", title="constraints")
    found = list(installed_constraints().values()) + [resolve(ref) for ref in args.extra]
    for info in found:
        table.add_row(info.cls.name, info.cls.stage, info.doc, info.origin)
    Console(width=200).print(table)
    return 0
