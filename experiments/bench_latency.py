"""Benchmark: DC-AC latency as a ratio to MobileNetV3-L, over random structurally feasible ``dcac`` architectures.

In one process: MobileNetV3-L from the zoo, the AttendNeXt seed and ``--n`` random architectures
of the ``dcac`` space that keep rules 1-3 (columnar, pointwise_strided,
antialiased_downsampling), each in its training form and its inference form (batch norm
folded, exact DC-AC rewrites), in torch eager and onnxruntime; 224 px, batch 1, one thread,
all timed in interleaved rounds so the machine's drift hits all alike (torch: channels-last, as
gensynth.cost.torch_call deploys). Each architecture's
latency is divided by MobileNetV3-L's inference form in the same runtime; the summary gives
the minimum, quartiles and median of those ratios per form and runtime. Writes
``experiments/results/bench_latency.json``; docs/benchmarks.md quotes it.

    python experiments/bench_latency.py [--n 200] [--rounds 2] [--runs 5] [--seed 1000]
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from gensynth.calibrate import feasible_architectures  # rules 1-3, distinct by structural hash
from gensynth.compare import interleaved_latency, machine, onnx_call
from gensynth.cost import count_params, export_onnx, graph_macs, torch_call
from gensynth.nn import build_model, inference_form
from gensynth.references import load_reference
from gensynth.space import load_space

OUT = Path(__file__).resolve().parent / "results" / "bench_latency.json"
RUNTIMES = ("torch", "onnxruntime")
FORMS = ("training", "inference")


def quantiles(values: list[float]) -> dict[str, float]:
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return {"min": round(min(values), 3), "q1": round(q1, 3), "median": round(median, 3), "q3": round(q3, 3), "max": round(max(values), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="random feasible architectures (default: 200)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1000, help="first sampling seed (default: 1000)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    started = time.perf_counter()
    graphs = {"mobilenetv3_large": load_reference("mobilenetv3_large"), "attendnext_seed": load_space("dcac").seed_graph()}
    graphs |= {f"random_{digest}": graph for digest, graph in feasible_architectures(args.n, args.seed).items()}
    calls, costs = {}, {}
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        for name, graph in graphs.items():
            model = build_model(graph).eval()
            costs[name] = {"params": count_params(model), "macs": sum(graph_macs(graph).values())}
            for form, variant in (("training", model), ("inference", inference_form(model))):
                calls[(name, form, "torch")] = torch_call(variant, (3, 224, 224))
                path = export_onnx(variant, (3, 224, 224), Path(tmp) / f"{len(calls)}.onnx")
                calls[(name, form, "onnxruntime")] = onnx_call(path, threads=1)
        spreads = interleaved_latency(calls, rounds=args.rounds, runs=args.runs, warmup=2)
    reference = {runtime: spreads[("mobilenetv3_large", "inference", runtime)].median_ms for runtime in RUNTIMES}
    ratios = {name: {f"{form}/{runtime}": spreads[(name, form, runtime)].median_ms / reference[runtime]
                     for form in FORMS for runtime in RUNTIMES} for name in graphs}
    random_names = [name for name in graphs if name.startswith("random_")]
    summary = {key: quantiles([ratios[name][key] for name in random_names]) for key in ratios["attendnext_seed"]}
    small_fast = [name for name in random_names if costs[name]["params"] <= 4.0e6
                  and all(ratios[name][f"inference/{runtime}"] <= 0.5 for runtime in RUNTIMES)]
    for key, q in summary.items():
        print(f"{key:24} ratio to MobileNetV3-L: min {q['min']:.2f}  median {q['median']:.2f}  (seed {ratios['attendnext_seed'][key]:.2f})")
    print(f"random architectures with <= 4.0 M params at least 2x faster than MobileNetV3-L in both runtimes: {len(small_fast)}")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({
        "command": f"python experiments/bench_latency.py --n {args.n} --rounds {args.rounds} --runs {args.runs} --seed {args.seed}",
        "machine": machine(threads=1), "seconds": round(time.perf_counter() - started),
        "protocol": "224 px, batch 1, one thread; interleaved rounds, each call timed --runs times; median over rounds; "
                    "ratio = latency / MobileNetV3-L inference-form latency in the same runtime",
        "reference_ms": {runtime: round(ms, 3) for runtime, ms in reference.items()},
        "seed_ratios": {k: round(v, 3) for k, v in ratios["attendnext_seed"].items()},
        "random_ratio_quantiles": summary,
        "small_and_2x_faster": len(small_fast),
        "architectures": {name: {**costs[name], **{k: round(v, 3) for k, v in ratios[name].items()}} for name in graphs},
    }, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
