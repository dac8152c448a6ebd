"""``gensynth show``: a run's leaderboard and how many candidates each constraint rejected; every candidate as JSON or CSV for scripts."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..errors import UserError
from ..report.runs import read_config
from ..search.metrics import list_metrics
from ..search.record import CandidateRecord
from ..search.report import leaderboard, rejections, row, status_counts
from ..search.store import RunStore
from .formats import add_format_option, print_csv, print_json
from .args import integer

CSV_COLUMNS = ["number", "hash", "status", "feasible", "rejected_at", "score"]
"""The CSV's first columns; every declared metric follows, then the reason."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("show", help="leaderboard and constraint rejections of a run",
                       description="Print a run's leaderboard (best feasible candidates) and how many candidates each constraint rejected.")
    p.add_argument("run_dir", type=Path, help="a run directory (runs/<name>)")
    p.add_argument("--top", type=integer(1), default=10, help="leaderboard rows of the table (default: 10)")
    add_format_option(p, "every candidate record, in file order", "one line per candidate with each metric as a column")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    store = RunStore(args.run_dir)
    if not store.candidates_path.is_file():
        raise UserError(f"{args.run_dir}: not a run directory (no candidates.jsonl)")
    records = store.records()  # read-only: show never writes the run directory
    if args.format == "json":
        print_json([json.loads(r.to_json()) for r in records])
    elif args.format == "csv":
        metrics = [m for m in list_metrics() if m not in CSV_COLUMNS]
        print_csv([*CSV_COLUMNS, *metrics, "reason"], [csv_row(r, metrics) for r in records])
    else:
        print_table(args, records)
    return 0


def csv_row(record: CandidateRecord, metrics: list[str]) -> dict[str, object]:
    """One candidate: its outcome, then its measurements by metric name (empty where not measured)."""
    return {"number": record.number, "hash": record.hash, "status": record.status.value, "feasible": record.feasible,
            "rejected_at": record.rejected_at, "score": record.score, **{m: record.measurements.get(m) for m in metrics},
            "reason": record.reason}


def validation_images(store: RunStore) -> int | None:
    """The run's validation images (``training.val_images`` of its config.yaml), or None when it has no readable config."""
    try:
        return read_config(store).training.val_images
    except UserError:
        return None


def print_table(args: argparse.Namespace, records: list[CandidateRecord]) -> None:
    console = Console()
    counts = status_counts(records)
    console.print(f"{args.run_dir}: {len(records)} proposals — " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    board = leaderboard(records, args.top)
    if board:
        val_images = validation_images(RunStore(args.run_dir))
        table = Table(*row(board[0], val_images), title="leaderboard (feasible, by score; top-1 ± binomial SE)")
        for record in board:
            table.add_row(*row(record, val_images).values())
        console.print(table)
    else:
        console.print("no feasible candidate yet")
    rejected = Table("constraint", "rejected", title="rejections per constraint")
    for name, count in rejections(records).most_common():
        rejected.add_row(name, str(count))
    console.print(rejected)
