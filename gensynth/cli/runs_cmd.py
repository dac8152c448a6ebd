"""``gensynth runs``: every run in a folder with its status, budget, best score and last change."""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..report.runs import RunSummary, list_runs
from .formats import add_format_option, print_csv, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list runs: status, budget, best score, last change",
                       description="List the run directories in DIR with their status (finished, in progress: a search holds the "
                       "run's lock, or stopped before the budget), budget, candidates evaluated, best feasible score and the time "
                       "of the last recorded candidate. Only reads.")
    p.add_argument("folder", type=Path, nargs="?", default=Path("runs"), metavar="DIR", help="a folder of runs, or one run (default: runs)")
    add_format_option(p, "a list of objects", "one line per run")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    summaries = list_runs(args.folder)
    if args.format == "json":
        print_json([s.as_dict() for s in summaries])
    elif args.format == "csv":
        print_csv(list(RunSummary.COLUMNS), [s.as_dict() for s in summaries])
    elif not summaries:
        Console().print(f"no runs in {args.folder}")
    else:
        table = Table("run", "status", "evaluated / budget", "proposals", "best score", "last change", title=f"runs in {args.folder}")
        for s in summaries:
            table.add_row(str(s.path), s.status, f"{s.evaluated} / {s.budget if s.budget is not None else '?'}", str(s.proposals),
                          f"{s.best_score:.3f}" if s.best_score is not None else "–", f"{s.last_change:%Y-%m-%d %H:%M}")
        Console().print(table)
    return 0
