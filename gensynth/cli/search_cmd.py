"""``gensynth search``: run or resume a search; every option can come from ``--config``."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..search.config import load_config

# flag → config key (dotted for nested sections); only flags the user gives override the config file
FLAGS = {
    "space": "space", "budget": "budget", "seed": "seed", "name": "name", "out": "out", "sampler": "sampler",
    "objective": "objective.name", "data": "data", "executor": "executor", "ray_address": "ray_address",
    "workers": "workers", "propose_ahead": "propose_ahead", "threads_per_worker": "threads_per_worker", "storage": "storage",
    "max_proposals": "max_proposals", "train_images": "training.train_images", "val_images": "training.val_images",
    "epochs": "training.epochs", "latency_runs": "latency.runs", "timeout": "timeout", "warm_start": "warm_start",
}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "search",
        help="search a space for the best architecture under the constraints",
        description="Generative synthesis: propose architectures from a space, reject those that break structural rules, "
        "measure the rest (params, MACs, latency, proxy training) and emit the best feasible one into <run>/final/. "
        "Running the same command on an existing run directory resumes it.",
    )
    p.add_argument("--config", type=Path, help="YAML file with any of the options below (flags override it)")
    p.add_argument("--space", help="space name or path to a space .yaml (default: dcac)")
    p.add_argument("--budget", type=int, help="candidates that enter evaluation; duplicates and structural rejections do not count (default: 500)")
    p.add_argument("--seed", type=int, help="seed of the generator and of proxy training (default: 0)")
    p.add_argument("--name", help="run name: runs/<name> and the Optuna study name (default: the space name)")
    p.add_argument("--out", help="run directory (default: runs/<name>)")
    p.add_argument("--sampler", help="tpe (default), random, nsga2 (multi-objective), regularized_evolution, or an installed plugin")
    p.add_argument("--objective", help="netscore (default), weighted (weights in --config), pareto, or an installed plugin")
    p.add_argument("--constraint", action="append", default=[], metavar="SPEC",
                   help="add a constraint: a registered name or path/to/file.py:ClassName (repeatable)")
    p.add_argument("--data", help="proxy dataset: fashion-mnist (embedded, default), fashion-mnist-full, an ImageFolder or CIFAR-10 folder")
    p.add_argument("--train-images", type=int, help="proxy training images (default: 1024)")
    p.add_argument("--val-images", type=int, help="proxy validation images (default: 500)")
    p.add_argument("--epochs", type=int, help="proxy training epochs (default: 1)")
    p.add_argument("--latency-runs", type=int, help="timed latency runs per candidate, 0 to skip (default: 10)")
    p.add_argument("--executor", help="local (default: single-thread worker processes; with --workers 1, training in this process and probes beside it) or ray")
    p.add_argument("--ray-address", help="address of an existing Ray cluster (default: start a local one)")
    p.add_argument("--workers", type=int, help="tasks at once: local worker processes or Ray tasks (default 0: local, the usable cores up to 2; ray, 2)")
    p.add_argument("--propose-ahead", type=int, metavar="N",
                   help="candidates proposed ahead of the oldest unrecorded one with the local executor: more keeps workers "
                   "busy, fewer lets the sampler hear more results first (default: 2; runs before 2026-11-24: 1)")
    p.add_argument("--threads-per-worker", type=int, help="torch threads per worker process or Ray task (default: 1)")
    p.add_argument("--storage", help="Optuna storage: a database URL or a journal file (run.log) (default: the journal file <run>/study.log)")
    p.add_argument("--max-proposals", type=int, help="stop proposing after this many proposals (default: 200 x budget)")
    p.add_argument("--timeout", type=float, help="stop starting candidates after this many seconds (those in flight finish); "
                   "run the same command again to resume (default: no limit)")
    p.add_argument("--warm-start", choices=["seed"], help="evaluate the space's seed architecture first (any sampler)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar, no progress lines")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..search.assemble import run_search  # torch and the engine: only when a search runs

    overrides = {key: getattr(args, flag) for flag, key in FLAGS.items() if getattr(args, flag) is not None}
    config = load_config(args.config, overrides)
    if args.constraint:
        config.constraints = [*config.constraints, *args.constraint]
    result = run_search(config, progress=not args.no_progress)
    print(f"run {result.root}: {result.evaluated} evaluated, {result.feasible} feasible, {result.proposals} proposals")
    if result.capped:
        print(f"stopped at the proposal cap ({config.proposal_cap}) before the budget was spent")
    if result.timed_out:
        print(f"stopped at the timeout ({config.timeout:g} s) before the budget was spent: run the same command to resume")
    if result.best is None:
        print("no feasible candidate: nothing emitted (see 'gensynth show')")
        return 1
    print(f"best: candidate {result.best.number} score {result.best.score:.3f} -> {result.final_dir}")
    return 0
