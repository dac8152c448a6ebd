"""``gensynth report``: a run's self-contained HTML page, with its plots as PNG and SVG beside it."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write a run's HTML report (plots, emitted architecture, protocol)",
                       description="Write RUN/report/index.html: best score over candidates, feasible and rejected counts per rule, "
                       "accuracy against latency and params with the Pareto front and references, the emitted architecture's "
                       "diagram and layer table, and the run's protocol; every plot also as PNG and SVG beside it. "
                       "The page is self-contained and opens offline. The run directory is only read.")
    p.add_argument("run_dir", type=Path, help="a run directory (runs/<name>)")
    p.add_argument("--out", type=Path, metavar="DIR", help="write the page and plots here (default: RUN/report)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..report import write_report

    print(write_report(args.run_dir, args.out))
    return 0
