"""``gensynth show``: a run's leaderboard and how many candidates each constraint rejected."""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..errors import UserError
from ..search.report import leaderboard, rejections, row, status_counts
from ..search.store import RunStore
from .inspect_cmd import integer


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="leaderboard and constraint rejections of a run",
                       description="Print a run's leaderboard (best feasible candidates) and how many candidates each constraint rejected.")
    p.add_argument("run_dir", type=Path, help="a run directory (runs/<name>)")
    p.add_argument("--top", type=integer(1), default=10, help="leaderboard rows (default: 10)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    store = RunStore(args.run_dir)
    if not store.candidates_path.is_file():
        raise UserError(f"{args.run_dir}: not a run directory (no candidates.jsonl)")
    records = store.records()  # read-only: show never writes the run directory
    console = Console()
    counts = status_counts(records)
    console.print(f"{args.run_dir}: {len(records)} proposals — " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    board = leaderboard(records, args.top)
    if board:
        table = Table(*row(board[0]), title="leaderboard (feasible, by score)")
        for record in board:
            table.add_row(*row(record).values())
        console.print(table)
    else:
        console.print("no feasible candidate yet")
    rejected = Table("constraint", "rejected", title="rejections per constraint")
    for name, count in rejections(records).most_common():
        rejected.add_row(name, str(count))
    console.print(rejected)
    return 0
