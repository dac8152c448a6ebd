"""``gensynth experiments``: the experiment configs shipped inside the package, runnable as ``search --config NAME``."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..search.config import shipped_experiments


def add_parser(sub: argparse._SubParsersAction) -> None:
    experiments = sub.add_parser("experiments", help="list the shipped experiment configs",
                                 description="List the experiment configs that ship with gensynth.")
    actions = experiments.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(experiments))
    listing = actions.add_parser("list", help="list the shipped experiment configs (run one: gensynth search --config NAME)",
                                 description="List the experiment configs that ship with gensynth, each with the first line "
                                 "of its comment; run one with 'gensynth search --config NAME'.")
    listing.set_defaults(run=run_list)


def run_list(args: argparse.Namespace) -> int:
    shipped = shipped_experiments()
    width = max(map(len, shipped), default=0)
    for name, path in shipped.items():
        print(f"{name:<{width}}  {first_comment(path)}")
    return 0


def first_comment(path: Path) -> str:
    """The first ``#`` comment line of a YAML file, without the ``#`` (empty when it has none)."""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#"):
            return line.lstrip().lstrip("#").strip()
    return ""
