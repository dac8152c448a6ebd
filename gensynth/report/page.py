"""The run report: one self-contained HTML page, with every plot also written beside it as PNG and SVG.

Self-contained so that it opens offline, mailed or copied: images are data:
URIs, the style is inline, there is no script, and a Content-Security-Policy
forbids any fetch. It only reads the run directory (``RunStore.records``,
``config.yaml``, ``references.json``, ``final/``); it writes its own folder.
"""
from __future__ import annotations

import base64
import html
import json
import shutil
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ..errors import UserError
from ..inspection import inspect_graph
from ..ir import ArchGraph, load
from ..ir.draw import to_dot
from ..search.config import SearchConfig, constraint_specs
from ..search.emit import STEM
from ..search.metrics import list_metrics, metric
from ..search.record import CandidateRecord
from ..search.report import leaderboard, rejections, row, status_counts
from ..search.store import RunStore
from ..space import SearchSpace, load_space
from . import plots
from .runs import read_config

PLOTS = ("best_score", "outcomes", "accuracy_latency_ms", "accuracy_params")
"""Every plot's file stem; a plot not drawn this time has its old files removed."""

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
figure { margin: 1.5rem 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption, .note { font-size: 0.9rem; color: #444; } .note { font-style: italic; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.5rem 0; }
th, td { border: 1px solid #ccc; padding: 0.15rem 0.5rem; text-align: left; }
.diagram { max-height: 60rem; overflow: auto; border: 1px solid #ddd; } .diagram img { max-width: none; }
"""
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def write_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write ``<out>/index.html`` (default ``<run_dir>/report/``) and its plots; return the page's path."""
    store = RunStore(Path(run_dir))
    if not store.candidates_path.is_file():
        raise UserError(f"{run_dir}: not a run directory (no candidates.jsonl)")
    config = read_config(store)
    records = store.records()
    out = Path(out) if out is not None else store.root / "report"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"{out}: cannot create the report folder ({err.strerror})") from None
    page = _Page(store, config, records, out)
    text = page.render()
    (out / "index.html").write_text(text, encoding="utf-8")
    for stem in set(PLOTS) - page.drawn:
        for suffix in (".png", ".svg"):
            (out / f"{stem}{suffix}").unlink(missing_ok=True)
    return out / "index.html"


class _Page:
    """The page's sections, in order; each says how its figures were measured."""

    def __init__(self, store: RunStore, config: SearchConfig, records: list[CandidateRecord], out: Path):
        self.store, self.config, self.records, self.out = store, config, records, out
        self.drawn: set[str] = set()
        self.space, self.space_note = _space(config)
        # keys are label:hash[:protocol fingerprint]; a label measured again (a changed protocol) keeps its latest entry
        self.references = {key.split(":", 1)[0]: values for key, values in store.reference_cache().items()}

    def render(self) -> str:
        name = self.config.name or self.store.root.name
        body = [f"<h1>Run <code>{_e(name)}</code></h1>", self.overview(), self.search_plots(), self.accuracy_plots(),
                self.emitted(), self.protocol()]
        return (
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">"
            f"<title>gensynth run {_e(name)}</title><style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n</body></html>\n"
        )

    # -- protocol phrases, shared by the captions ---------------------------------------------------
    @property
    def deployment(self) -> str:
        if self.space is None:
            return "the space's deployment shape"
        return f"{self.space.deployment.resolution} px, {self.space.deployment.num_classes} classes, batch 1"

    @property
    def proxy(self) -> str:
        t = self.config.training
        if self.space is None:
            at = "at the space's proxy resolution"
        else:
            skip = self.space.proxy.skip_reductions
            at = f"at {self.space.proxy.resolution} px" + (f", the first {skip} reduction level(s) skipped" if skip else "")
        return (f"{t.val_images} images of <code>{_e(self.config.data)}</code>, after {t.epochs} epoch(s) on {t.train_images} "
                f"training images {at} (batch {t.batch_size}, AdamW lr {t.lr}, weight decay {t.weight_decay}, seed {self.config.seed}); "
                "a ranking signal, not an accuracy estimate")

    @property
    def latency(self) -> str:
        lat = self.config.latency
        return (f"the inference form in {lat.backend}, {self.deployment}, {lat.threads} thread(s), {lat.warmup} warm-up run(s), "
                f"median of {lat.runs} timed runs (± half their interquartile range), on the machine that ran the search")

    def measured_as(self, name: str) -> str:
        """How the metric ``name`` was measured in this run."""
        how = {"accuracy": self.proxy, "latency_ms": self.latency}.get(name, self.deployment)
        return f"<b>{_e(name)}</b>: {_e(metric(name).description)}: {how}"

    @property
    def val_images(self) -> int | None:
        """The validation-set size behind accuracy, when this run's accuracy comes from the proxy training stage."""
        return self.config.training.val_images if metric("accuracy").stage in self.config.stages else None

    # -- sections -----------------------------------------------------------------------------------
    def overview(self) -> str:
        counts = status_counts(self.records)
        evaluated = sum(r.inquired for r in self.records)
        board = leaderboard(self.records)
        parts = [
            f"<p>Space <code>{_e(self.config.space)}</code>, seed {self.config.seed}, sampler <code>{_e(self.config.sampler)}</code>, "
            f"objective <code>{_e(self.config.objective.name)}</code>. {evaluated} of a budget of {self.config.budget} candidates "
            f"evaluated; {len(self.records)} proposals: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            + f". Report written {datetime.now().astimezone():%Y-%m-%d %H:%M %Z} from <code>{_e(self.store.root)}</code>.</p>",
            "<h2>Leaderboard (feasible, by score)</h2>",
            _table(list(row(board[0], self.val_images)), [row(r, self.val_images).values() for r in board])
            if board else _note("no feasible candidate yet"),
        ]
        rejected = rejections(self.records).most_common()
        parts += ["<h3>Rejections per constraint</h3>", _table(["constraint", "rejected"], rejected) if rejected else _note("none")]
        return "\n".join(parts)

    def search_plots(self) -> str:
        parts = ["<h2>The search</h2>"]
        if any(r.feasible for r in self.records):
            parts.append(self.figure("best_score", plots.best_score(self.records), "Best score over candidates",
                                     f"<b>score</b>: {_e(metric('score').description)}; this run's objective is "
                                     f"<code>{_e(self.config.objective.name)}</code>. Every feasible candidate's score by candidate number "
                                     "(the Optuna trial number), and the best so far. The score is computed from the measurements "
                                     "plotted below, measured as their captions say."))
        else:
            parts.append(_note("no feasible candidate yet: no score to plot"))
        if self.records:
            constraints = ", ".join(f"<code>{_e(name)}</code>" for name, _ in constraint_specs(self.config)) or "none"
            parts.append(self.figure(
                "outcomes", plots.outcomes(self.records), "Feasible and rejected candidates over time",
                "Running counts by candidate number (final counts in the legend): feasible candidates (evaluated, every "
                "constraint satisfied); for each constraint, the candidates it rejected (structural rules on the graph before any "
                "cost is spent, measured ones right after the stage that measures what they need; a candidate can count for "
                "several); candidates a stage stopped by its own reason; failed ones. Duplicates are not counted. "
                f"Constraints: {constraints}."))
        return "\n".join(parts)

    def accuracy_plots(self) -> str:
        parts = ["<h2>Accuracy against cost</h2>"]
        n = self.val_images
        noise = (f"Error bars (front and references): ±1 binomial standard error of top-1 over the {n} validation images, 100·sqrt(p(1−p)/n) with p the "
                 "measured top-1 (the validation sample's noise only; the training seed's is not included)." if n else
                 "No noise band: this run's accuracy does not come from the proxy training stage, so its sample size is unknown.")
        refs = (" Red stars: reference architectures, measured by this run with the same stages and protocol "
                f"(<code>references.json</code>: {', '.join(_e(k) for k in self.references)})." if self.references else "")
        for cost in ("latency_ms", "params"):
            if not any("accuracy" in r.measurements and cost in r.measurements for r in self.records):
                parts.append(_note(f"no candidate of this run has both accuracy and {cost} (stages: {_e(', '.join(self.config.stages))})"))
                continue
            acc, x = metric("accuracy"), metric(cost)
            parts.append(self.figure(
                f"accuracy_{cost}", plots.accuracy_against(self.records, cost, self.references, n), f"Accuracy against {cost}",
                "One point per candidate with both measurements (hollow: a measured constraint rejected it). "
                f"{self.measured_as('accuracy')}. {self.measured_as(cost)}. "
                f"The line joins the Pareto front of the feasible candidates ({acc.name} {acc.direction}d, {x.name} {x.direction}d). "
                + noise + refs))
        return "\n".join(parts)

    def emitted(self) -> str:
        parts = ["<h2>The emitted architecture</h2>"]
        path = self.store.final_dir / f"{STEM}.yaml"
        if not path.is_file():
            return "\n".join([*parts, _note(f"no <code>final/{STEM}.yaml</code> yet: the run has no feasible candidate")])
        graph = load(path)
        record = next((r for r in self.records if r.feasible and r.hash == graph.structural_hash()), None)
        if record is not None:
            cells = [(k, _number(k, v)) for k, v in record.measurements.items()]
            parts += [f"<p>Candidate {record.number}, hash <code>{record.hash}</code>, score {record.score:.3f} "
                      f"(<code>final/{STEM}.yaml</code>).</p>", _table(["measurement", "value"], cells)]
        parts += ["<h3>Diagram</h3>", self.diagram(graph), "<h3>Layers</h3>"]
        report = inspect_graph(graph, latency_runs=0)  # shapes, params, MACs and memory only: no timing in a report
        parts.append(f"<p>At {report.resolution} px, {report.num_classes} classes (the deployment shape): {report.params:,} parameters, "
                     f"{report.macs:,} MACs (conv/linear, fvcore; other element-wise ops {report.other_ops:,}), peak activations "
                     f"{report.peak_activation_bytes / 2**20:.1f} MiB (batch 1, fp32).</p>")
        parts.append(_table(["node", "op", "output", "params", "MACs"],
                            [(r.name, r.op, "×".join(map(str, r.shape)), f"{r.params:,}", f"{r.macs:,}") for r in report.rows]))
        return "\n".join(parts)

    def diagram(self, graph: ArchGraph) -> str:
        drawn = self.store.final_dir / f"{STEM}.svg"
        if drawn.is_file():
            svg = drawn.read_bytes()
        elif shutil.which("dot") is not None:
            svg = to_dot(graph).pipe(format="svg")
        else:
            return _note("no diagram: graphviz's <code>dot</code> is not installed (apt-get install graphviz)")
        return f"<div class=\"diagram\"><img alt=\"diagram of {_e(graph.name)}\" src=\"{_data_uri('image/svg+xml', svg)}\"></div>"

    def protocol(self) -> str:
        rows = list(_flatten(self.config.to_dict()))
        if self.space is not None:
            rows += [("space: proxy", f"{self.space.proxy.resolution} px, skip_reductions {self.space.proxy.skip_reductions}"),
                     ("space: deployment", self.deployment)]
        parts = ["<h2>Protocol</h2>", "<p>The run's resolved <code>config.yaml</code>, with the space's proxy adaptation and "
                 "deployment shape.</p>", _table(["setting", "value"], rows)]
        if self.space_note:
            parts.append(_note(_e(self.space_note)))
        return "\n".join(parts)

    def figure(self, stem: str, fig: Figure, title: str, caption: str) -> str:
        """Save ``fig`` beside the page and embed its PNG; ``caption`` is HTML."""
        png = plots.save(fig, self.out, stem)
        self.drawn.add(stem)
        return (f"<figure><img alt=\"{_e(title)}\" src=\"{_data_uri('image/png', png)}\"><figcaption><b>{_e(title)}.</b> {caption} "
                f"(<a href=\"{stem}.png\">PNG</a>, <a href=\"{stem}.svg\">SVG</a>)</figcaption></figure>")


def _space(config: SearchConfig) -> tuple[SearchSpace | None, str]:
    """The run's space (for the proxy and deployment shapes), or why it could not be read."""
    try:
        return load_space(config.space), ""
    except UserError as err:
        return None, f"the space could not be loaded here, so its shapes are not shown ({err})"


def _flatten(data: dict[str, Any], prefix: str = "") -> Iterable[tuple[str, str]]:
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value if isinstance(value, str) else json.dumps(value)


def _number(name: str, value: float) -> str:
    unit = metric(name).unit if name in list_metrics() else ""
    return (f"{value:,.0f}" if abs(value) >= 1e4 else f"{value:.4g}") + (f" {unit}" if unit else "")


def _table(header: list[str], rows: Iterable[Iterable[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _note(text: str) -> str:
    return f"<p class=\"note\">{text}</p>"


def _e(value: Any) -> str:
    return html.escape(str(value))


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"
