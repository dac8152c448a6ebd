"""Benchmark of the core pipeline on this machine: sampling → graph → validation → hash, and build + MACs.

    python experiments/bench_core.py [--graph-seeds 500] [--build-seeds 30] [--latency-runs 30] [--threads 1]

Times, per architecture of the ``dcac`` space (seeds 0..N-1):

(a) ``space.sample(seed)`` + ``space.to_graph`` + ``graph.validate()`` + ``graph.structural_hash()``
    (target: <= 5 ms);
(b) ``build_model(graph)`` + ``count_macs(model, (3, 224, 224))`` (target: <= 300 ms);
(c) the batch-1 torch latency of the seed architecture (AttendNeXt as described) at 224 px,
    and onnxruntime's when it is installed.

Prints a table and the machine, writes ``experiments/results/bench_core.json`` and prints a
markdown section for docs/benchmarks.md (also written to ``--markdown FILE`` if given).
The load average is recorded before and after: on a shared machine it explains outliers.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from gensynth.cost import count_macs, count_params, graph_macs, export_onnx, measure_latency, measure_onnx_latency
from gensynth.nn import build_model
from gensynth.space import load_space

ROOT = Path(__file__).resolve().parent.parent
TARGETS_MS = {"graph": 5.0, "build_macs": 300.0}


def summary(times_s: list[float]) -> dict[str, float]:
    """Mean, median, nearest-rank p95 and max, in milliseconds."""
    ms = sorted(t * 1e3 for t in times_s)
    return {
        "n": len(ms),
        "mean_ms": statistics.fmean(ms),
        "median_ms": statistics.median(ms),
        "p95_ms": ms[math.ceil(0.95 * len(ms)) - 1],
        "max_ms": ms[-1],
    }


def machine(threads: int) -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": threads,
    }


def bench_graph(space, seeds: int) -> dict[str, object]:
    """(a) sample + genome → graph + validate + hash, one architecture at a time."""
    for seed in range(5):  # warm-up (imports, caches); not timed
        space.to_graph(space.sample(seed)).validate()
    steps = {"sample": [], "to_graph": [], "validate": [], "hash": [], "total": []}
    cpu = []
    for seed in range(seeds):
        c0 = time.process_time()
        t0 = time.perf_counter()
        genome = space.sample(seed)
        t1 = time.perf_counter()
        graph = space.to_graph(genome)
        t2 = time.perf_counter()
        graph.validate()
        t3 = time.perf_counter()
        graph.structural_hash()
        t4 = time.perf_counter()
        cpu.append(time.process_time() - c0)
        for key, value in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0)):
            steps[key].append(value)
    result = {key: summary(values) for key, values in steps.items()}
    result["total"]["cpu_mean_ms"] = statistics.fmean(cpu) * 1e3
    return result


def bench_build(space, seeds: int) -> dict[str, object]:
    """(b) build_model + count_macs at the deployment resolution, one architecture at a time."""
    dep = space.deployment
    shape = (dep.channels, dep.resolution, dep.resolution)
    count_macs(build_model(space.to_graph(space.sample(10**6))), shape)  # warm-up: first trace is slower
    steps = {"build_model": [], "count_macs": [], "total": [], "graph_macs": [], "build_graph_macs": []}
    macs, cpu = [], []
    for seed in range(seeds):
        graph = space.to_graph(space.sample(seed))
        c0 = time.process_time()
        t0 = time.perf_counter()
        model = build_model(graph)
        t1 = time.perf_counter()
        macs.append(count_macs(model, shape).macs)
        t2 = time.perf_counter()
        cpu.append(time.process_time() - c0)
        analytic = sum(graph_macs(graph).values())
        t3 = time.perf_counter()
        assert analytic == macs[-1], f"seed {seed}: graph rules {analytic} != fvcore {macs[-1]}"
        for key, value in zip(steps, (t1 - t0, t2 - t1, t2 - t0, t3 - t2, t1 - t0 + t3 - t2)):
            steps[key].append(value)
    result = {key: summary(values) for key, values in steps.items()}
    result["total"]["cpu_mean_ms"] = statistics.fmean(cpu) * 1e3
    result["macs_range_M"] = [min(macs) / 1e6, max(macs) / 1e6]
    return result


def bench_seed(space, runs: int, threads: int) -> dict[str, object]:
    """(c) the seed architecture: params, MACs, batch-1 latency (torch, and onnxruntime if installed)."""
    graph = space.seed_graph()
    dep = space.deployment
    shape = (dep.channels, dep.resolution, dep.resolution)
    model = build_model(graph).eval()
    result: dict[str, object] = {
        "name": graph.name,
        "hash": graph.structural_hash(),
        "params_M": count_params(model) / 1e6,
        "macs_M": count_macs(model, shape).macs / 1e6,
    }
    lat = measure_latency(model, shape, runs=runs, warmup=5, threads=threads)
    result["torch"] = {"median_ms": lat.median_ms, "p90_ms": lat.p90_ms, "min_ms": lat.min_ms, "runs": lat.runs, "threads": lat.threads}
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        result["onnxruntime"] = None
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = export_onnx(model, shape, Path(tmp) / "seed.onnx")
            lat = measure_onnx_latency(path, shape, runs=runs, warmup=5, threads=threads)
        result["onnxruntime"] = {"median_ms": lat.median_ms, "p90_ms": lat.p90_ms, "min_ms": lat.min_ms, "runs": lat.runs, "threads": lat.threads}
    return result


HEADER = ("step", "per", "mean (wall)", "p95 (wall)", "mean (CPU)", "target")


def rows(report: dict) -> list[tuple[str, ...]]:
    """(what, per, mean, p95, CPU mean, target) rows of the results table."""
    g, b, s = report["graph"], report["build"], report["seed"]
    out = [
        ("sample + to_graph + validate + hash", f"arch (n={g['total']['n']})", f"{g['total']['mean_ms']:.2f} ms", f"{g['total']['p95_ms']:.2f} ms",
         f"{g['total']['cpu_mean_ms']:.2f} ms", f"<= {TARGETS_MS['graph']:g} ms"),
    ]
    for step in ("sample", "to_graph", "validate", "hash"):
        out.append((f"  {step}", "arch", f"{g[step]['mean_ms']:.3f} ms", f"{g[step]['p95_ms']:.3f} ms", "", ""))
    out.append(("build_model + count_macs @224", f"arch (n={b['total']['n']})", f"{b['total']['mean_ms']:.1f} ms", f"{b['total']['p95_ms']:.1f} ms",
                f"{b['total']['cpu_mean_ms']:.1f} ms", f"<= {TARGETS_MS['build_macs']:g} ms"))
    for step in ("build_model", "count_macs"):
        out.append((f"  {step}", "arch", f"{b[step]['mean_ms']:.1f} ms", f"{b[step]['p95_ms']:.1f} ms", "", ""))
    out.append(("build_model + graph_macs @224 (what the search runs)", f"arch (n={b['total']['n']})", f"{b['build_graph_macs']['mean_ms']:.1f} ms",
                f"{b['build_graph_macs']['p95_ms']:.1f} ms", "", f"<= {TARGETS_MS['build_macs']:g} ms"))
    out.append(("  graph_macs (equal to count_macs on every one)", "arch", f"{b['graph_macs']['mean_ms']:.2f} ms", f"{b['graph_macs']['p95_ms']:.2f} ms", "", ""))
    for backend, label in (("torch", "torch eager"), ("onnxruntime", "onnxruntime")):
        lat = s.get(backend)
        if lat:
            out.append((f"seed latency, {label} @224", f"batch 1, {lat['threads']} thread, {lat['runs']} runs", f"{lat['median_ms']:.1f} ms (median)", f"{lat['p90_ms']:.1f} ms (p90)", "", ""))
    return out


def verdicts(report: dict) -> dict[str, bool]:
    g, b = report["graph"]["total"], report["build"]["total"]
    return {
        "graph_mean": g["mean_ms"] <= TARGETS_MS["graph"],
        "graph_p95": g["p95_ms"] <= TARGETS_MS["graph"],
        "build_macs_mean": b["mean_ms"] <= TARGETS_MS["build_macs"],
        "build_macs_p95": b["p95_ms"] <= TARGETS_MS["build_macs"],
    }


def markdown(report: dict) -> str:
    m, s, v = report["machine"], report["seed"], report["targets_met"]
    yes = {True: "met", False: "**missed**"}
    lines = [
        "## Core: sampling and building",
        "",
        f"Measured {report['date']} with `{report['command']}`.",
        "",
        f"Machine: {m['platform']}, {m['processor']}, {m['cpu_count']} CPUs (os.cpu_count()), "
        f"Python {m['python']}, torch {m['torch']}, {m['torch_threads']} torch thread(s). "
        f"Load average before/after: {report['loadavg_before'][0]:.2f} / {report['loadavg_after'][0]:.2f} (1 min)"
        + (" — the machine was shared with other jobs, so these figures are upper bounds." if max(report["loadavg_before"][0], report["loadavg_after"][0]) > 1.5 else "."),
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join([("&nbsp;&nbsp;" if r[0].startswith("  ") else "") + r[0].strip(), *r[1:]]) + " |" for r in rows(report)),
        "",
        f"Targets: sampling + graph + validation + hash <= {TARGETS_MS['graph']:g} ms per architecture "
        f"(mean {yes[v['graph_mean']]}, p95 {yes[v['graph_p95']]}); build_model + count_macs at 224 px <= "
        f"{TARGETS_MS['build_macs']:g} ms per architecture (mean {yes[v['build_macs_mean']]}, p95 {yes[v['build_macs_p95']]}).",
        "",
        f"Seed architecture ({s['name']}, hash `{s['hash']}`): {s['params_M']:.3f} M params, {s['macs_M']:.1f} M MACs at 224 px. "
        f"The sampled architectures of (b) have {report['build']['macs_range_M'][0]:.0f}–{report['build']['macs_range_M'][1]:.0f} M MACs.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--graph-seeds", type=int, default=500, help="architectures for (a) (default: 500)")
    parser.add_argument("--build-seeds", type=int, default=30, help="architectures for (b) (default: 30)")
    parser.add_argument("--latency-runs", type=int, default=30, help="timed runs of the seed latency (default: 30)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default: 1)")
    parser.add_argument("--space", default="dcac", help="search space (default: dcac)")
    parser.add_argument("--out", type=Path, default=ROOT / "experiments" / "results" / "bench_core.json", help="JSON output (default: experiments/results/bench_core.json)")
    parser.add_argument("--markdown", type=Path, metavar="FILE", help="also write the markdown section to FILE")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    command = "python " + " ".join([os.path.relpath(sys.argv[0], ROOT) if sys.argv[0] else "experiments/bench_core.py", *sys.argv[1:]])
    report: dict[str, object] = {
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "machine": machine(torch.get_num_threads()),
        "loadavg_before": list(os.getloadavg()),
        "space": args.space,
        "targets_ms": TARGETS_MS,
    }
    space = load_space(args.space)
    print(f"(a) sample + graph + validate + hash over {args.graph_seeds} seeds ...", flush=True)
    report["graph"] = bench_graph(space, args.graph_seeds)
    print(f"(b) build_model + count_macs at {space.deployment.resolution} px over {args.build_seeds} seeds ...", flush=True)
    report["build"] = bench_build(space, args.build_seeds)
    print(f"(c) seed architecture latency, {args.latency_runs} runs ...", flush=True)
    report["seed"] = bench_seed(space, args.latency_runs, args.threads)
    report["loadavg_after"] = list(os.getloadavg())
    report["targets_met"] = verdicts(report)

    m = report["machine"]
    print()
    print(f"machine: {m['platform']} | {m['processor']} | os.cpu_count()={m['cpu_count']} | torch {m['torch']} | threads {m['torch_threads']}")
    print(f"command: {command}")
    print(f"load average (1/5/15 min) before {report['loadavg_before']}, after {report['loadavg_after']}")
    table = [HEADER, *rows(report)]
    widths = [max(len(r[i]) for r in table) for i in range(len(HEADER))]
    for i, row in enumerate(table):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    print(f"targets met: {report['targets_met']}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {args.out}\n")
    section = markdown(report)
    print(section)
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
