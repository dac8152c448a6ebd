"""Benchmark: what the inference form (batch norm folded, exact DC-AC rewrites) saves, as a ratio to MobileNetV3-L.

In one process, interleaved rounds time the AttendNeXt seed and MobileNetV3-L from the zoo at
224 px, batch 1, one thread, each in its training form, with batch norm folded only, and in the
full inference form, in torch eager and in onnxruntime. Writes
``experiments/results/bench_rewrites.json``; docs/benchmarks.md quotes it.

    python experiments/bench_rewrites.py [--rounds 10] [--runs 10]
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch

from gensynth.compare import interleaved_latency, machine, onnx_call
from gensynth.cost import export_onnx, torch_call
from gensynth.nn import build_model, fold_batchnorms, inference_form
from gensynth.references import load_reference
from gensynth.space import load_space

OUT = Path(__file__).resolve().parent / "results" / "bench_rewrites.json"


def forms(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """The training form, batch norm folded only, and the full inference form."""
    return {"training": model.eval(), "bn_folded": fold_batchnorms(model), "inference": inference_form(model)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    graphs = {"attendnext_seed": load_space("dcac").seed_graph(), "mobilenetv3_large": load_reference("mobilenetv3_large")}
    shape = (1, 3, 224, 224)
    calls = {}
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode():
        for name, graph in graphs.items():
            for form, model in forms(build_model(graph)).items():
                calls[(name, form, "torch")] = torch_call(model, (3, 224, 224))
                path = export_onnx(model, shape[1:], Path(tmp) / f"{name}-{form}.onnx")
                calls[(name, form, "onnxruntime")] = onnx_call(path, threads=1)
        spreads = interleaved_latency(calls, rounds=args.rounds, runs=args.runs, warmup=3)
    rows = []
    for (name, form, runtime), spread in spreads.items():
        reference = spreads[("mobilenetv3_large", "inference", runtime)]
        rows.append({"model": name, "form": form, "runtime": runtime, "median_ms": round(spread.median_ms, 3),
                     "iqr_ms": round(spread.iqr_ms, 3), "ratio_to_mobilenetv3_large_inference": round(spread.median_ms / reference.median_ms, 3)})
        print(f"{name:18} {form:10} {runtime:12} {spread.median_ms:7.2f} ms  ×{rows[-1]['ratio_to_mobilenetv3_large_inference']:.2f} MobileNetV3-L")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({
        "command": "python experiments/bench_rewrites.py " + f"--rounds {args.rounds} --runs {args.runs}",
        "machine": machine(threads=1), "python": platform.python_version(),
        "protocol": "batch 1, 224 px, one thread, interleaved rounds (median of each round's runs; median and IQR over rounds)",
        "rows": rows,
    }, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
