"""Benchmark: the same seeded search with one local worker and with two, wall time and candidates per minute.

One worker is the executor of one core: training in the driver with torch's
default threads (as many as cores), probes in a probe process beside it. Two
workers are two single-thread worker processes. Each run is ``gensynth search
--space dcac --budget N --seed S --workers W`` with the default protocol, in
its own process, one after the other; the machine must be otherwise idle.
``same_candidates`` says whether both runs recorded the same candidates (number,
hash, status): training with 2 threads rounds differently from training with 1,
so on a multi-core machine the two runs' accuracies, and hence proposals, may
part. Writes ``experiments/results/bench_workers.json``.

    python experiments/bench_workers.py [--budget 20] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from gensynth.compare import machine
from gensynth.search.config import usable_cores

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "experiments" / "results" / "bench_workers.json"


def run(workers: int, budget: int, seed: int, out: Path) -> tuple[dict[str, object], list[tuple[int, str, str]]]:
    """One search with ``workers`` workers: its figures, and (number, hash, status) of each record."""
    shutil.rmtree(out, ignore_errors=True)
    command = [str(Path(sys.executable).parent / "gensynth"), "search", "--space", "dcac", "--budget", str(budget), "--seed", str(seed),
               "--workers", str(workers), "--out", str(out), "--no-progress"]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    records = [json.loads(line) for line in (out / "candidates.jsonl").read_text().splitlines()]
    inquired = sum(r["inquired"] for r in records)
    figures = {"workers": workers, "wall_s": round(wall, 1), "evaluated": inquired, "proposals": len(records),
               "candidates_per_minute": round(60 * inquired / wall, 2),
               "train_s": round(sum(r["timings"].get("train_s", 0.0) for r in records), 1),
               "best_score": max((r["score"] for r in records if r["feasible"]), default=None)}
    return figures, [(r["number"], r["hash"], r["status"]) for r in records]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "bench-workers")
    args = parser.parse_args()
    started = time.perf_counter()
    one, one_records = run(1, args.budget, args.seed, args.out / "one")
    two, two_records = run(2, args.budget, args.seed, args.out / "two")
    result = {
        "command": f"python experiments/bench_workers.py --budget {args.budget} --seed {args.seed}",
        "machine": machine(threads=1), "usable_cores": usable_cores(), "seconds": round(time.perf_counter() - started),
        "runs": [one, two], "speedup": round(one["wall_s"] / two["wall_s"], 2), "same_candidates": one_records == two_records,
    }
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
