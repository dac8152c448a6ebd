"""Benchmark: wall time of `gensynth search --space dcac --budget N` with the defaults, and the engine's share.

The workers' capacity is ``workers × wall time`` (``workers`` as the run resolved
it, in its config.yaml). The tasks' time is the sum of every stage's task timings
in candidates.jsonl (the probe's ``cost_s`` and ``latency_s``, each rung's
``train_s``). The engine's share is the rest of the capacity: start-up, proposals
and recording on the critical path, and workers idle while the driver works.
Engine work that overlaps the tasks (proposals and the storage mirror while the
workers measure) costs no capacity and is not in it; ``proposal_s`` shows how
much of it there was.

    python experiments/bench_search.py --budget 500          # the figure in docs/benchmarks.md
    python experiments/bench_search.py --budget 20 --out runs/bench-small

Writes experiments/results/bench_search.json and prints a markdown table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=500)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-search")
    parser.add_argument("--results", type=Path, default=ROOT / "experiments" / "results" / "bench_search.json")
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    command = [str(Path(sys.executable).parent / "gensynth"), "search", "--space", "dcac", "--budget", str(args.budget), "--out", str(args.out), "--no-progress"]
    start = time.perf_counter()
    subprocess.run(command, check=True)
    wall = time.perf_counter() - start
    records = [json.loads(line) for line in (args.out / "candidates.jsonl").read_text().splitlines()]
    inquired = [r for r in records if r["inquired"]]
    config = yaml.safe_load((args.out / "config.yaml").read_text())
    workers = config["workers"]
    timings = [t for r in records for stage in r.get("stages", {}).values() for t in [stage.get("timings", {})]]
    train = sum(t.get("train_s", 0.0) for t in timings)
    latency = sum(t.get("latency_s", 0.0) for t in timings)
    tasks = sum(sum(t.values()) for t in timings)
    engine = workers * wall - tasks
    result = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(["gensynth", *command[1:]]),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}, torch {torch.__version__}",
        "budget": args.budget,
        "evaluated": len(inquired),
        "proposals": len(records),
        "feasible": sum(1 for r in records if r["feasible"]),
        "failed": sum(1 for r in records if r["status"] == "failed"),
        "workers": workers,
        "propose_ahead": config["propose_ahead"],
        "wall_s": round(wall, 1),
        "tasks_s": round(tasks, 1),
        "train_s": round(train, 1),
        "latency_s": round(latency, 1),
        "engine_s": round(engine, 1),
        "engine_share": round(engine / (workers * wall), 4),
        "engine_s_per_candidate": round(engine / max(len(inquired), 1), 3),
        "wall_s_per_candidate": round(wall / max(len(inquired), 1), 3),
        "proposal_s": round(sum(r["timings"]["propose_s"] if r["inquired"] else r["timings"]["total_s"] for r in records), 1),
        "cost_probe_s": round(sum(t.get("cost_s", 0.0) for t in timings), 1),
        "best_score": max((r["score"] for r in records if r["feasible"]), default=None),
    }
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    print("\n| figure | value |\n|---|---|")
    for key, value in result.items():
        print(f"| {key} | {value} |")


if __name__ == "__main__":
    main()
