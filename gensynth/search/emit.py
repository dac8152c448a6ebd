"""Emitting the winner: ``final/`` with the graph, GraphML, diagram, ONNX files, proxy weights and a summary.

Two ONNX files, labelled inside and in ``summary.md``: the deployment network
with untrained weights (the search trains only at the proxy shape), and the
proxy-trained network with its weights.

``final/`` is written into ``final.partial/`` and swapped in by renames, with
the weights that the best record's own candidate left in ``best/``: a kill at
any instant leaves the previous ``final/`` or the new one, never a mix.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from ..cost import measure_deployed_latency, peak_activation_bytes
from ..export import graph_to_onnx
from ..ir import save, write_graphml
from ..ir.draw import draw_or_dot
from ..nn.builder import build_model
from ..nn.inference import inference_form
from ..ir.graph import ArchGraph
from .protocol import binomial_se
from .report import front, leaderboard, rejections, row, status_counts
from .training import proxy_graph

if TYPE_CHECKING:
    from .config import SearchConfig
    from .record import CandidateRecord
    from .run import Search

STEM = "attendnext"


def emit_final(search: Search, config: SearchConfig) -> Path:
    """Write ``final/`` for the best feasible candidate; return the folder."""
    best = search.best
    assert best is not None
    staged = search.store.staging_dir()
    graph = search.space.to_graph(best.genome, name=STEM)
    save(graph, staged / f"{STEM}.yaml")
    write_graphml(graph, staged / f"{STEM}.graphml")
    notes = [_diagram(graph, staged)]
    num_classes = search.data.num_classes if search.data else graph.num_classes
    proxy = proxy_graph(graph, search.space.proxy, num_classes)
    save(proxy, staged / "proxy.yaml")
    weights = search.store.weights_path(best.number)
    if weights.exists():
        shutil.copyfile(weights, staged / "weights.pt")
    else:
        notes.append(f"no trained weights: candidate {best.number}'s stages produced none")
    notes.append(_onnx(graph, proxy, staged, config.export_onnx))
    (staged / "summary.md").write_text(_summary(search, config, best, graph, proxy, staged, [n for n in notes if n]))
    return search.store.replace_final(staged)


def _diagram(graph: ArchGraph, final: Path) -> str:
    return draw_or_dot(graph, final / f"{STEM}.svg")[1]


def _onnx(graph: ArchGraph, proxy: ArchGraph, final: Path, wanted: bool) -> str:
    """The deployment network, untrained; the proxy network with ``weights.pt`` when the candidate left weights."""
    if not wanted:
        return "ONNX export disabled (export_onnx: false)."
    try:
        import onnx  # noqa: F401
    except ImportError:
        return "ONNX export skipped: install the extra, pip install 'gensynth[onnx]'."
    graph_to_onnx(graph, final / f"{STEM}.onnx")
    if (final / "weights.pt").exists():
        graph_to_onnx(proxy, final / f"{STEM}_proxy_trained.onnx", weights=final / "weights.pt")
    return ""


def _summary(search: Search, cfg: SearchConfig, best: CandidateRecord, graph: ArchGraph, proxy: ArchGraph, final: Path,
             notes: list[str]) -> str:
    records = search.records
    m = best.measurements
    peak = peak_activation_bytes(build_model(graph).eval(), graph.input_shape())
    lines = [
        f"# {STEM}: the best feasible architecture of run `{search.store.root}`",
        "",
        f"Space `{search.space.name}`, seed {cfg.seed}, sampler `{cfg.sampler}`, objective `{search.objective.name}`, "
        f"budget {cfg.budget}, data `{cfg.data}`.",
        "",
        f"- candidate {best.number}, hash `{best.hash}`, score {best.score:.3f}",
    ]
    if "accuracy" in m:
        se = f" ± {binomial_se(m['accuracy'], len(search.data.val_y)):.2f} (binomial SE)" if search.data is not None else ""
        lines.append(f"- proxy top-1 {m['accuracy']:.2f} %{se} ({cfg.training.train_images} training images, {cfg.training.epochs} epoch(s), "
                     f"{search.space.proxy.resolution} px, skip_reductions {search.space.proxy.skip_reductions}; {cfg.training.val_images} validation images)")
    lines.append(f"- {m['params'] / 1e6:.3f} M params, {m['macs'] / 1e6:.1f} M MACs, peak activations {peak / 2**20:.1f} MiB "
                 f"at {search.space.deployment.resolution} px, {search.space.deployment.num_classes} classes")
    if "latency_ms" in m and cfg.latency.predict:
        lat = cfg.latency
        timed = measure_deployed_latency(inference_form(build_model(graph).eval()), graph.input_shape(), lat.backend, lat.runs, lat.warmup,
                                         lat.threads)
        lines.append(f"- latency {timed.median_ms:.2f} ms, IQR {timed.iqr_ms:.2f} ms, timed now (inference form in {lat.backend}, batch 1, "
                     f"{lat.threads} thread, median of {lat.runs}); the search predicted {m['latency_ms']:.2f} ms from the per-node table")
    elif "latency_ms" in m:
        spread = f", IQR {m['latency_iqr_ms']:.2f} ms" if "latency_iqr_ms" in m else ""
        lines.append(f"- latency {m['latency_ms']:.2f} ms{spread} (inference form in {cfg.latency.backend}, batch 1, {cfg.latency.threads} thread, "
                     f"median of {cfg.latency.runs}, on the machine that ran the search)")
    lines += ["", "## Constraints", "", "| constraint | verdict | reason |", "|---|---|---|"]
    lines += [f"| {n} | {'ok' if v['satisfied'] else 'violated'} | {v['reason']} |" for n, v in best.verdicts.items()]
    counts = status_counts(records)
    lines += ["", "## Run", "", f"{len(records)} proposals: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())), ""]
    lines += ["Rejections per constraint: " + (", ".join(f"{k} {v}" for k, v in rejections(records).most_common()) or "none"), ""]
    board = leaderboard(records)
    if search.objective.multi:
        board = front(records, search.objective.metrics, search.objective.directions)
        lines += [f"## Pareto front ({', '.join(search.objective.metrics)})", ""]
    else:
        lines += ["## Leaderboard", ""]
    val_images = len(search.data.val_y) if search.data is not None else None
    cols = list(row(best, val_images))
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(row(r, val_images).values()) + " |" for r in board]
    lines += ["", "## Files", "", *_files(final, graph, proxy)]
    lines += ["", *[f"Note: {n}" for n in notes]] if notes else []
    return "\n".join(lines) + "\n"


def _files(final: Path, graph: ArchGraph, proxy: ArchGraph) -> list[str]:
    """One line per file in ``final``: what it is and, for the networks, whether its weights are trained."""
    deployment, at_proxy = _task(graph), _task(proxy)
    described = {
        f"{STEM}.yaml": f"the graph ({deployment}); `gensynth inspect` or `gensynth export` it",
        f"{STEM}.graphml": "the same graph as GraphML",
        f"{STEM}.svg": "its diagram",
        f"{STEM}.dot": "its diagram as graphviz text",
        f"{STEM}.onnx": f"the deployment network ({deployment}, dynamic batch) with **UNTRAINED**, randomly initialised "
        "weights: for deployment tooling and latency, not for predictions; train it at full scale first",
        "proxy.yaml": f"the graph proxy training built ({at_proxy}: the dataset's classes, proxy reductions)",
        "weights.pt": "the proxy-trained state dict of `proxy.yaml`: `build_model(load('proxy.yaml')).load_state_dict(...)`, "
        "or `gensynth export proxy.yaml --format pytorch --weights weights.pt --out net.py` for plain PyTorch; "
        "every tensor but the classifier's also fits the deployment graph",
        f"{STEM}_proxy_trained.onnx": f"the proxy-trained network: `proxy.yaml` with `weights.pt` ({at_proxy}, dynamic batch)",
    }
    return [f"- `{name}`: {text}" for name, text in described.items() if (final / name).exists()]


def _task(graph: ArchGraph) -> str:
    return f"{'×'.join(map(str, graph.input_shape()))} input, {graph.num_classes} classes"
