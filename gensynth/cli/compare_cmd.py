"""``gensynth compare``: an architecture (or a run's winner) beside reference architectures, measured alike."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from rich import box
from rich.console import Console
from rich.table import Table

from ..references import DEFAULT_REFERENCES
from .args import integer


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="measure an architecture or a run's winner beside reference architectures: params, MACs, latency, proxy accuracy",
        description="Measure every model in one process with the same settings: params, MACs, batch-1 latency of the inference "
        "form at the deployment shape (torch eager and onnxruntime, one thread, interleaved rounds), and proxy accuracy under "
        "the search's protocol (mean and spread over seeds). Prints a table; writes compare.csv, compare.md and an "
        "accuracy-against-latency plot (compare.png, compare.svg).",
    )
    p.add_argument("subject", type=Path, help="an architecture graph file, or a run directory (its final/attendnext.yaml, under its config.yaml)")
    p.add_argument("--references", default=",".join(DEFAULT_REFERENCES),
                   help=f"comma-separated zoo names or graph files; '' for none (default: {','.join(DEFAULT_REFERENCES)})")
    p.add_argument("--config", help="the protocol for a graph file: a config YAML or shipped experiment (default: the default protocol)")
    p.add_argument("--seeds", type=integer(1), default=2, help="proxy trainings per model, seeds from the protocol's (default: 2)")
    p.add_argument("--rounds", type=integer(1), default=10, help="interleaved timing rounds, each the protocol's latency.runs calls per model (default: 10)")
    p.add_argument("--out", type=Path, help="output folder (default: compare/ beside the graph file, or in the run directory)")
    p.add_argument("--no-accuracy", action="store_true", help="skip proxy training: params, MACs and latency only")
    p.add_argument("--onnx", action=argparse.BooleanOptionalAction, default=True, help="also time onnxruntime (default: on)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..compare import cells, compare, load_references, load_subject, write_report

    subject, config, out = load_subject(args.subject, args.config)
    references = load_references([name.strip() for name in args.references.split(",") if name.strip()])
    comparison = compare([subject, *references], config, seeds=args.seeds, rounds=args.rounds, onnx=args.onnx,
                         accuracy=not args.no_accuracy, command=command(args, out), say=lambda line: print(f"gensynth: {line}", file=sys.stderr))
    rows = [cells(row) for row in comparison.rows]
    table = Table(title=f"compared on {comparison.setup['machine']}", box=box.SIMPLE_HEAD, pad_edge=False)
    for name in rows[0]:
        table.add_column(name, no_wrap=name in ("model", "kind"), overflow="fold")  # a narrow terminal wraps figures, never cuts them
    for row in rows:
        table.add_row(*row.values())
    Console(width=None if sys.stdout.isatty() else 200).print(table)  # a file or pipe has no width to fit
    for path in write_report(comparison, args.out or out):
        print(f"wrote {path}")
    return 0


def command(args: argparse.Namespace, out: Path) -> str:
    """The command line that repeats this comparison, every setting spelled out (for the report's header)."""
    words = ["gensynth", "compare", str(args.subject), "--references", args.references, "--seeds", str(args.seeds),
             "--rounds", str(args.rounds), "--out", str(args.out or out), "--onnx" if args.onnx else "--no-onnx"]
    words += ["--config", args.config] if args.config else []
    words += ["--no-accuracy"] if args.no_accuracy else []
    return shlex.join(words)
