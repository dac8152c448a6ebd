"""Benchmark: where the time goes, per operator type, in the inference form (onnxruntime's profiler and torch's).

For MobileNetV3-L, the AttendNeXt seed and the fastest-by-design architecture of the ``dcac`` space
(``stem.reduce: 4``, 8-wide columns, ``f_condense: 8``), at 224 px, batch 1, one thread: each op
type's share of the summed kernel time, and the number of kernels run per inference; torch both
channels-last (as deployed) and in NCHW. Writes
``experiments/results/profile_ops.json``; docs/blocks.md quotes it.

    python experiments/profile_ops.py [--runs 30]
"""
from __future__ import annotations

import argparse
import collections
import json
import tempfile
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from gensynth.compare import machine
from gensynth.cost import export_onnx, torch_call
from gensynth.ir.graph import ArchGraph
from gensynth.nn import build_model, inference_form
from gensynth.references import load_reference
from gensynth.space import load_space

OUT = Path(__file__).resolve().parent / "results" / "profile_ops.json"


def fast_design() -> ArchGraph:
    """The seed with the stem reducing by 4 and 8-wide, strongly condensed columns."""
    space = load_space("dcac")
    genome = dict(space.seed_genome, **{"stem.reduce": 4})
    for i in range(genome["col.count"]):
        genome |= {f"col{i}.width": 8, f"col{i}.f_condense": 8}
    return space.to_graph(space.check(genome))


def shares(durations: dict[str, float], runs: int) -> dict[str, dict[str, float]]:
    total = sum(durations.values())
    return {op: {"share": round(d / total, 4), "ms_per_run": round(d / runs, 4)}
            for op, d in sorted(durations.items(), key=lambda kv: -kv[1])}


def onnxruntime_profile(model: torch.nn.Module, folder: Path, runs: int) -> dict:
    import onnxruntime as ort

    path = export_onnx(model, (3, 224, 224), folder / "model.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    options.enable_profiling, options.profile_file_prefix = True, str(folder / "ort")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: torch.randn(1, 3, 224, 224).numpy()}
    for _ in range(5):
        session.run(None, feed)
    session.end_profiling()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    durations: dict[str, float] = collections.Counter()
    for event in kernels:
        durations[event["args"]["op_name"]] += event["dur"] / 1e3
    return {"kernels_per_run": len(kernels) / runs, "ms_per_run": round(sum(durations.values()) / runs, 3), "ops": shares(durations, runs)}


def torch_profile(model: torch.nn.Module, runs: int, channels_last: bool) -> dict:
    call = torch_call(model, (3, 224, 224)) if channels_last else (lambda x=torch.randn(1, 3, 224, 224): model(x))
    with torch.inference_mode():
        for _ in range(5):
            call()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(runs):
                call()
    durations = {e.key: e.self_cpu_time_total / 1e3 for e in prof.key_averages() if e.key.startswith("aten::")}
    calls = sum(e.count for e in prof.key_averages() if e.key.startswith("aten::"))
    return {"aten_calls_per_run": calls / runs, "ms_per_run": round(sum(durations.values()) / runs, 3), "ops": dict(list(shares(durations, runs).items())[:12])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(1)
    graphs = {"mobilenetv3_large": load_reference("mobilenetv3_large"), "attendnext_seed": load_space("dcac").seed_graph(), "fast_design": fast_design()}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, graph in graphs.items():
            model = inference_form(build_model(graph).eval())
            folder = Path(tmp) / name
            folder.mkdir()
            results[name] = {"onnxruntime": onnxruntime_profile(model, folder, args.runs),
                             "torch": torch_profile(model, args.runs, channels_last=True),
                             "torch_nchw": torch_profile(model, args.runs, channels_last=False)}
            top = list(results[name]["onnxruntime"]["ops"].items())[:5]
            print(f"{name:18} ORT {results[name]['onnxruntime']['ms_per_run']:.2f} ms/run in kernels, "
                  + ", ".join(f"{op} {v['share']:.0%}" for op, v in top))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({
        "command": f"python experiments/profile_ops.py --runs {args.runs}", "machine": machine(threads=1),
        "protocol": "224 px, batch 1, one thread, inference form; onnxruntime: summed *_kernel_time events per op type "
                    "(layout reorders included); torch: self CPU time per aten op under torch.profiler, channels-last as "
                    "gensynth.cost.torch_call deploys (torch_nchw: the same in NCHW)",
        "results": results,
    }, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
