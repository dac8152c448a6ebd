"""Copy a finished AttendNeXt discovery run's results into ``experiments/results/attendnext/`` (docs/attendnext-discovery.md).

Copies the emitted graph (``final/attendnext.yaml``, ``.svg``), the run's ``summary.md`` and the progress plots
(``report/best_score``, ``report/outcomes``, png and svg), and writes ``run.yaml``: the command, date, machine, wall
time, the run's config, candidates evaluated / proposed / feasible, rejections per rule (a candidate can break
several), the best candidate's record and the references as the run measured them. ``gensynth compare`` writes
``compare/`` separately (see the doc).

    python experiments/attendnext_results.py runs/attendnext --wall-s 724 [--command "gensynth search --config attendnext"]
"""
from __future__ import annotations

import argparse
import datetime
import json
import shutil
from pathlib import Path

import yaml

from gensynth.compare import machine
from gensynth.search.record import Status
from gensynth.search.report import rejections
from gensynth.search.store import RunStore

RESULTS = Path(__file__).resolve().parent / "results" / "attendnext"
COPIED = ("final/attendnext.yaml", "final/attendnext.svg", "final/summary.md", "report/best_score.png", "report/best_score.svg",
          "report/outcomes.png", "report/outcomes.svg")


def run_summary(run: Path, command: str, wall_s: float) -> dict:
    config = yaml.safe_load((run / "config.yaml").read_text())  # as the run recorded it
    records = RunStore(run).records()
    feasible = [r for r in records if r.status == Status.EVALUATED and r.feasible]
    best = max(feasible, key=lambda r: r.score)
    references = {key.split(":")[0]: values for key, values in json.loads((run / "references.json").read_text()).items()}
    return {"command": command, "date": datetime.date.today().isoformat(), "machine": machine(config["latency"]["threads"]),
            "wall_s": wall_s, "config": config, "evaluated": sum(r.inquired for r in records), "proposals": len(records),
            "feasible": len(feasible), "rejections_per_rule": dict(rejections(records).most_common()),
            "best": {"number": best.number, "hash": best.hash, "score": best.score, "measurements": best.measurements},
            "references_in_run": references}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--wall-s", type=float, required=True, help="the search's wall time, as timed outside it")
    parser.add_argument("--command", default="gensynth search --config attendnext --no-progress")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"default: {RESULTS}")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        shutil.copyfile(args.run / name, args.out / Path(name).name)
    summary = run_summary(args.run, args.command, args.wall_s)
    (args.out / "run.yaml").write_text(yaml.safe_dump(summary, sort_keys=False))
    print(f"best: candidate {summary['best']['number']} ({summary['best']['hash']}), {summary['evaluated']} evaluated, "
          f"{summary['feasible']} feasible, {summary['proposals']} proposals -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
