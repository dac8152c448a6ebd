"""``gensynth spaces``: list the shipped search spaces, sample a genome into a graph file."""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..errors import UserError
from ..ir import save
from ..search.config import MAX_SEED
from ..space import builtin_spaces, load_space
from ..space.genes import gene_names
from .args import integer


def add_parser(sub: argparse._SubParsersAction) -> None:
    spaces = sub.add_parser("spaces", help="list and sample search spaces", description="List and sample search spaces.")
    actions = spaces.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=type(spaces))
    listing = actions.add_parser("list", help="list the search spaces that ship with gensynth", description="List the search spaces that ship with gensynth.")
    listing.set_defaults(run=run_list)
    sample = actions.add_parser(
        "sample",
        help="sample one architecture and write its graph",
        description="Sample one architecture from a space (deterministic for --seed) and write its graph as YAML or JSON.",
    )
    sample.add_argument("space", help="a shipped space name (see 'gensynth spaces list') or a path to a space .yaml")
    sample.add_argument("--seed", type=integer(0, MAX_SEED), default=0, help=f"random seed in [0, {MAX_SEED}] (default: 0)")
    sample.add_argument("--out", type=Path, default=Path("arch.yaml"), help="output graph file, .yaml or .json (default: arch.yaml)")
    sample.add_argument("--seed-architecture", action="store_true", help="write the space's seed architecture instead of a random sample")
    sample.set_defaults(run=run_sample)


def run_list(args: argparse.Namespace) -> int:
    table = Table("space", "family", "genes", "size", "file", title="search spaces")
    for name, path in builtin_spaces().items():
        space = load_space(path)
        table.add_row(name, space.family, str(len(gene_names(space.genes))), f"{space.size():.3e}", str(path))
    Console().print(table)
    return 0


def run_sample(args: argparse.Namespace) -> int:
    space = load_space(args.space)
    if args.seed_architecture:
        graph = space.seed_graph()
        if graph is None:
            raise UserError(f"space '{space.name}' ships no seed architecture")
    else:
        graph = space.to_graph(space.sample(args.seed), name=f"{space.name}-seed{args.seed}")
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        save(graph, args.out)
    except OSError as err:
        raise UserError(f"--out {args.out}: cannot write ({err.strerror or err})") from None
    print(f"wrote {args.out}: {len(graph)} nodes, hash {graph.structural_hash()}")
    return 0
