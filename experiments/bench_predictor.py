"""Benchmark: the per-node latency predictor (gensynth.cost.latency_table) against whole-network latency.

For ``--n`` random structurally feasible ``dcac`` architectures (rules 1-3, sampled from ``--seed`` on) and each
backend: the whole network's batch-1 latency in its inference form (gensynth.cost.measure_deployed_latency, as the
probe times candidates), then its prediction from a latency table that starts empty (in a temporary folder, or
``--table-dir``, where tables are kept and reused), one thread, 224 px. Each architecture is measured, then predicted
(measuring the table entries it lacks), so drift hits both alike; a second pass predicts them all from the filled
table, and a third pass measures every network whole again (the retest: how far a measurement moves by itself, the
floor under the predictor's error). Reports per architecture measured, predicted and retest ms and the relative
errors, the fraction within ±10 %, the median and 95th-percentile absolute relative error (for the prediction and for
the retest), and the seconds spent measuring whole networks, building the table and predicting. Writes ``experiments/results/bench_predictor.json``.

    python experiments/bench_predictor.py [--n 50] [--seed 2000] [--backends torch onnxruntime] [--runs 20] [--warmup 5]

With ``--run DIR`` the architectures are instead ``--n`` of that run's evaluated candidates (evenly spaced in proposal
order), and with ``--pinned FILE`` predictions come from that table first (``latency.table``), as that run's did:

    python experiments/bench_predictor.py --run runs/attendnext --pinned experiments/attendnext-latency.json \
        --backends onnxruntime --n 30 --out experiments/results/bench_predictor_attendnext.json
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
import time
from pathlib import Path

import torch

from gensynth.calibrate import feasible_architectures  # rules 1-3, distinct by structural hash
from gensynth.compare import machine
from gensynth.cost import BACKENDS, measure_deployed_latency
from gensynth.cost.latency_table import LatencyProfile, LatencyTable
from gensynth.ir.graph import ArchGraph
from gensynth.nn import build_model, inference_form
from gensynth.report.runs import read_config
from gensynth.search.record import Status
from gensynth.search.store import RunStore
from gensynth.space import load_space

OUT = Path(__file__).resolve().parent / "results" / "bench_predictor.json"


def bench_backend(graphs: dict[str, ArchGraph], backend: str, table_dir: Path, runs: int, warmup: int, pinned: Path | None = None) -> dict:
    """Measure and predict every graph on ``backend``; the summary and per-architecture results."""
    path = table_dir / LatencyProfile.current(backend, threads=1).file_name()
    table = LatencyTable(backend, threads=1, path=path, runs=runs, warmup=warmup, pinned=pinned)
    rows: dict[str, dict[str, float]] = {}
    seconds = {"measure": 0.0, "build": 0.0, "predict": 0.0}
    measured_entries = 0
    for name, graph in graphs.items():
        start = time.perf_counter()
        deployed = inference_form(build_model(graph).eval())
        measured = measure_deployed_latency(deployed, graph.input_shape(), backend, runs, warmup, threads=1).median_ms
        seconds["measure"] += time.perf_counter() - start
        start = time.perf_counter()
        prediction = table.predict(graph)
        seconds["build"] += time.perf_counter() - start
        measured_entries += prediction.measured
        by_op: dict[str, float] = {}
        for node, ms in prediction.per_node_ms.items():
            by_op[graph.op(node)] = by_op.get(graph.op(node), 0.0) + ms
        rows[name] = {"measured_ms": round(measured, 3), "predicted_ms": round(prediction.total_ms, 3),
                      "rel_err": round((prediction.total_ms - measured) / measured, 4), "nodes": len(prediction.per_node_ms),
                      "predicted_by_op_ms": {op: round(ms, 4) for op, ms in sorted(by_op.items())}}
        print(f"{backend:12} {name}: measured {measured:7.2f} ms, predicted {prediction.total_ms:7.2f} ms "
              f"({rows[name]['rel_err']:+.1%}; {prediction.measured} entries measured, {prediction.cached} cached)")
    start = time.perf_counter()
    for graph in graphs.values():
        table.predict(graph)
    seconds["predict"] = time.perf_counter() - start
    for name, graph in graphs.items():  # the same measurement again: how far the measured value itself moves
        again = measure_deployed_latency(inference_form(build_model(graph).eval()), graph.input_shape(), backend, runs, warmup,
                                         threads=1).median_ms
        rows[name]["retest_ms"] = round(again, 3)
        rows[name]["retest_rel_err"] = round((again - rows[name]["measured_ms"]) / rows[name]["measured_ms"], 4)
    summary = {
        **error_summary([row["rel_err"] for row in rows.values()]),
        "retest": error_summary([row["retest_rel_err"] for row in rows.values()]),
        "table_entries": len(table), "entries_measured": measured_entries, "overhead_ms": round(table.overhead_ms, 4),
        "seconds": {key: round(value, 2) for key, value in seconds.items()},
    }
    print(f"{backend:12} within ±10%: {summary['within_10pct']:.0%}, median |err| {summary['median_abs_rel_err']:.1%}, "
          f"p95 |err| {summary['p95_abs_rel_err']:.1%}; {seconds['build']:.1f} s building the table, "
          f"{seconds['predict']:.2f} s predicting {len(graphs)} networks from it, {seconds['measure']:.1f} s measuring them whole; "
          f"measured again, within ±10% of the first: {summary['retest']['within_10pct']:.0%}")
    return {"summary": summary, "architectures": rows}


def error_summary(rel_errors: list[float]) -> dict[str, float]:
    """The fraction within ±10 %, and the median and 95th-percentile (nearest rank) absolute relative error."""
    errors = sorted(abs(e) for e in rel_errors)
    return {"within_10pct": round(sum(e <= 0.10 for e in errors) / len(errors), 3),
            "median_abs_rel_err": round(statistics.median(errors), 4),
            "p95_abs_rel_err": round(errors[math.ceil(0.95 * len(errors)) - 1], 4)}


def run_candidates(run: Path, n: int) -> dict[str, ArchGraph]:
    """``n`` of ``run``'s evaluated candidates, evenly spaced in proposal order, as graphs of the run's space."""
    store = RunStore(run)
    space = load_space(read_config(store).space)
    evaluated = [r for r in store.records() if r.status == Status.EVALUATED]
    chosen = [evaluated[round(i * (len(evaluated) - 1) / max(n - 1, 1))] for i in range(min(n, len(evaluated)))]
    return {f"candidate_{r.number}": space.to_graph(r.genome) for r in chosen}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50, help="random feasible architectures (default: 50)")
    parser.add_argument("--seed", type=int, default=2000, help="first sampling seed (default: 2000; the tests use none of these)")
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS))
    parser.add_argument("--runs", type=int, default=20, help="timed calls per measurement, whole network or one node (default: 20)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--table-dir", type=Path, help="keep the tables here and reuse them (default: fresh ones in a temporary folder)")
    parser.add_argument("--run", type=Path, help="a run directory: time its evaluated candidates instead of random architectures")
    parser.add_argument("--pinned", type=Path, help="a latency table used before the fresh one, as latency.table")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    if args.run:
        graphs = run_candidates(args.run, args.n)
    else:
        graphs = {f"random_{digest}": graph for digest, graph in feasible_architectures(args.n, args.seed).items()}
    with tempfile.TemporaryDirectory(prefix="gensynth-bench-predictor-") as tmp:
        table_dir = args.table_dir or Path(tmp)
        results = {backend: bench_backend(graphs, backend, table_dir, args.runs, args.warmup, args.pinned) for backend in args.backends}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    command = (f"python experiments/bench_predictor.py --n {args.n} --seed {args.seed} --backends {' '.join(args.backends)} "
               f"--runs {args.runs} --warmup {args.warmup}" + (f" --table-dir {args.table_dir}" if args.table_dir else "")
               + (f" --run {args.run}" if args.run else "") + (f" --pinned {args.pinned}" if args.pinned else "") + f" --out {args.out}")
    args.out.write_text(json.dumps({
        "command": command, "machine": machine(threads=1), "seconds": round(time.perf_counter() - started),
        "protocol": "224 px, batch 1, one thread, inference form; measured: median of --runs calls of the whole network "
                    "(gensynth.cost.measure_deployed_latency); predicted: LatencyTable.predict, the sum over nodes of each "
                    "one-node network's median latency less the per-network overhead, plus the overhead once; "
                    "rel_err = (predicted - measured) / measured; retest: the whole network measured again after the predictions, "
                    "retest_rel_err = (retest - measured) / measured",
        "results": results,
    }, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
