"""Benchmark: search throughput on a local 2-CPU Ray cluster with one worker and with two.

Starts a Ray head (``ray start --head --num-cpus 2``), then runs ``gensynth search
--space dcac --executor ray --ray-address ... --workers W --seed S --budget B`` from
scratch for W in (1, 2) and B in (--small, --large). A run's wall time includes
start-up (imports, connecting, the dataset); the throughput is the difference,
``(large - small) / (T(large) - T(small))`` candidates evaluated per minute, so
start-up cancels. The machine must be otherwise idle. Writes
``experiments/results/bench_ray.json``.

    python experiments/bench_ray.py [--small 10] [--large 50] [--seed 0]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from gensynth.compare import machine

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "experiments" / "results" / "bench_ray.json"
PORT = 6390
ENV = {**os.environ, "RAY_AUTH_MODE": "disabled"}
"""A throw-away local cluster: no token authentication (Ray 2.5x enables it by default; a client would need the token)."""


def search(address: str, workers: int, budget: int, seed: int, out: Path) -> float:
    """Wall seconds of one search from scratch."""
    shutil.rmtree(out, ignore_errors=True)
    command = [str(Path(sys.executable).parent / "gensynth"), "search", "--space", "dcac", "--executor", "ray", "--ray-address", address,
               "--workers", str(workers), "--seed", str(seed), "--budget", str(budget), "--out", str(out), "--no-progress"]
    start = time.perf_counter()
    subprocess.run(command, check=True, stderr=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10)
    parser.add_argument("--large", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ray = str(Path(sys.executable).parent / "ray")
    subprocess.run([ray, "start", "--head", "--num-cpus", "2", "--port", str(PORT), "--include-dashboard", "false"], check=True,
                   stdout=subprocess.DEVNULL, env=ENV)
    address = f"127.0.0.1:{PORT}"
    results = {}
    try:
        for workers in (1, 2):
            walls = {b: search(address, workers, b, args.seed, ROOT / "runs" / f"bench-ray-{workers}-{b}") for b in (args.small, args.large)}
            per_minute = 60 * (args.large - args.small) / (walls[args.large] - walls[args.small])
            results[workers] = {"wall_s": {str(b): round(w, 1) for b, w in walls.items()}, "candidates_per_minute": round(per_minute, 2)}
            print(f"{workers} worker(s): {walls} -> {per_minute:.2f} candidates/min", flush=True)
    finally:
        subprocess.run([ray, "stop", "--force"], check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    speedup = results[2]["candidates_per_minute"] / results[1]["candidates_per_minute"]
    OUT.write_text(json.dumps({
        "command": f"python experiments/bench_ray.py --small {args.small} --large {args.large} --seed {args.seed}",
        "machine": machine(threads=1),
        "protocol": "gensynth search --space dcac with the default protocol on a local Ray head with 2 CPUs (one per task); "
                    "throughput = (large - small) budget / (wall(large) - wall(small)), each run from scratch",
        "results": results, "speedup_2_over_1": round(speedup, 3),
    }, indent=1) + "\n")
    print(f"speed-up 2 over 1: {speedup:.2f}x; wrote {OUT}")


if __name__ == "__main__":
    main()
