"""The search engine end to end on a tiny space: plugins, determinism, failures, objectives.

Searches here run in-process on ``tiny.yaml``, a cut-down copy of the shipped
``dcac`` space (same family and genes, fewer options, 64 px deployment, 16 px
proxy) with a tiny proxy protocol, so a budget-3 run takes a few seconds.
"""
from __future__ import annotations

import json
import math
import re
import textwrap
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from gensynth.cli.main import main
from gensynth.constraint import Candidate
from gensynth.errors import UserError
from gensynth.ir import ArchGraph, save
from gensynth.plugins import instantiate, resolve
from gensynth.search import load_config, make_objective, netscore, run_search
from gensynth.search import training as training_module
from gensynth.search.config import ObjectiveConfig
from gensynth.search.objective import dominates, pareto_front
from gensynth.search.record import CandidateRecord
from gensynth.search.report import front, rejections
from gensynth.space import load_space
from tiny_space import write_protocol, write_tiny_space  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "tests" / "plugins"
DOC = ROOT / "docs" / "writing-constraints.md"

# -- a tiny space and protocol -------------------------------------------------------------------------

PROTOCOL = {
    "training.train_images": 64, "training.val_images": 50, "training.batch_size": 32,
    "latency.runs": 1, "latency.warmup": 0, "latency.backend": "torch", "export_onnx": False,
    "report": False, "workers": 1,  # as tiny_space.TINY_PROTOCOL: no report pages, no worker processes to start
}


@contextmanager
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return write_tiny_space(tmp_path_factory.mktemp("space"))


def config(space: Path, out: Path, **overrides: Any):
    return load_config(None, {"space": str(space), "budget": 3, "seed": 0, "out": str(out), **PROTOCOL, **overrides})


def search(space: Path, out: Path, constraints: list = (), **overrides: Any):
    with one_torch_thread():
        return run_search(config(space, out, **overrides), constraints=list(constraints), progress=False)


def records(run: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (Path(run) / "candidates.jsonl").read_text().splitlines()]


def typed(recs: list[dict[str, Any]]) -> list[CandidateRecord]:
    """The records as the engine reads them (the report helpers take typed records)."""
    return [CandidateRecord.from_json(json.dumps(r)) for r in recs]


def feasible_hashes(recs: list[dict[str, Any]]) -> set[str]:
    return {r["hash"] for r in recs if r["feasible"]}


def inquired(recs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in recs if r["inquired"]]


@pytest.fixture(scope="module")
def baseline(tiny, tmp_path_factory) -> Path:
    """Seed 0, budget 3, the default structural rules only."""
    out = tmp_path_factory.mktemp("baseline") / "run"
    result = search(tiny, out)
    assert result.evaluated == 3
    return out


# -- the documented plugin -------------------------------------------------------------------------------


def doc_code_blocks(text: str) -> list[str]:
    """Every ```python block, list-item indentation removed."""
    blocks = re.findall(r"^( *)```python\n(.*?)^\1```[ \t]*$", text, flags=re.S | re.M)
    return [textwrap.dedent(body) if indent else body for indent, body in blocks]


def test_doc_plugin_is_the_tested_plugin():
    """The plugin shown in docs/writing-constraints.md is byte for byte tests/plugins/max_nodes.py."""
    blocks = [b for b in doc_code_blocks(DOC.read_text()) if "class MaxNodes(Constraint)" in b]
    assert len(blocks) == 1, "the doc must show the MaxNodes plugin in exactly one ```python block"
    assert blocks[0] == (PLUGINS / "max_nodes.py").read_text()


def test_doc_plugin_works(tmp_path):
    """The doc's code, run as written: it loads from a file path and judges graphs."""
    (block,) = [b for b in doc_code_blocks(DOC.read_text()) if "class MaxNodes(Constraint)" in b]
    path = tmp_path / "from_the_doc.py"
    path.write_text(block)
    info = resolve(f"{path}:MaxNodes")
    assert info.cls.name == "max_nodes" and info.cls.stage == "structural" and info.origin == f"file {path}"
    graph = load_space("dcac").seed_graph()
    n = len(graph)
    cand = Candidate({}, graph, graph.structural_hash())
    kept = instantiate(f"{path}:MaxNodes", {"limit": n}).check(cand)
    assert kept.satisfied and kept.violation == 0
    broken = instantiate(f"{path}:MaxNodes", {"limit": n - 10}).check(cand)
    assert not broken.satisfied and broken.violation > 0 and f"{n} nodes" in broken.reason
    further = instantiate(f"{path}:MaxNodes", {"limit": n - 20}).check(cand)
    assert further.violation > broken.violation
    with pytest.raises(UserError, match="limit"):
        instantiate(f"{path}:MaxNodes", {"limit": 0})


def test_every_python_block_in_the_doc_compiles():
    blocks = doc_code_blocks(DOC.read_text())
    assert len(blocks) >= 3
    for block in blocks:
        compile(block, str(DOC), "exec")


def test_the_docs_testing_example_runs():
    """The doc's 'Testing a plugin' snippet, executed with the doc's plugin in scope."""
    blocks = doc_code_blocks(DOC.read_text())
    (plugin,) = [b for b in blocks if "class MaxNodes(Constraint)" in b]
    (example,) = [b for b in blocks if "MaxNodes(limit=3)" in b]
    namespace: dict[str, Any] = {"__name__": "doc_example"}
    exec(compile(plugin, "plugin", "exec"), namespace)
    exec(compile(example, "example", "exec"), namespace)
    assert namespace["verdict"].reason == "4 nodes (limit 3)"


# -- plugins change the search -------------------------------------------------------------------------------


def node_count(space: Path, genome: dict[str, Any]) -> int:
    return len(load_space(space).to_graph(genome))


def test_file_plugin_from_config_changes_feasible_set(tiny, baseline, tmp_path):
    base = records(baseline)
    sizes = {r["hash"]: node_count(tiny, r["genome"]) for r in base if r["feasible"]}
    assert sizes, "the baseline found no feasible candidate"
    limit = max(sizes.values()) - 1  # the baseline's largest feasible candidate breaks the plugin
    plugin = f"{PLUGINS / 'max_nodes.py'}:MaxNodes"
    constrained = tmp_path / "run"
    cfg = config(tiny, constrained, max_proposals=150)
    cfg.constraints = [*cfg.constraints, {plugin: {"limit": limit}}]
    with one_torch_thread():
        result = run_search(cfg, progress=False)
    assert result.evaluated == 3
    recs = records(constrained)
    assert feasible_hashes(recs) != feasible_hashes(base)
    assert max(sizes, key=sizes.get) not in feasible_hashes(recs)
    for r in recs:
        n = node_count(tiny, r["genome"])
        if r["feasible"]:
            assert n <= limit
        if r["status"] != "duplicate" and n > limit and r["hash"]:
            assert r["status"] == "rejected" and r["rejected_at"] == "structural"
            assert r["verdicts"]["max_nodes"]["satisfied"] is False
            assert r["violations"]["max_nodes"] > 0
    assert rejections(typed(recs))["max_nodes"] >= 1
    assert "max_nodes" not in rejections(typed(base))
    # the plugin and its options are part of the run's resolved config
    saved = yaml.safe_load((constrained / "config.yaml").read_text())
    assert {plugin: {"limit": limit}} in saved["constraints"]


def test_measured_file_plugin_from_the_command_line(tiny, baseline, tmp_path, capsys):
    """--constraint path/to/file.py:Class with a measured plugin (requires params): checked after the probe."""
    from_file = PLUGINS / "max_params_measured.py"
    limit = 60_000  # the plugin's default
    base = records(baseline)
    assert any(r["feasible"] and r["measurements"]["params"] > limit for r in base), "precondition: baseline has a big one"
    out = tmp_path / "run"
    argv = ["search", "--space", str(tiny), "--config", str(write_protocol(tmp_path)), "--budget", "3", "--seed", "0",
            "--out", str(out), "--no-progress", "--constraint", f"{from_file}:ParamCeiling"]  # the baseline's protocol
    with one_torch_thread():
        code = main(argv)
    assert code in (0, 1), capsys.readouterr().err
    recs = records(out)
    assert len(inquired(recs)) == 3  # measured rejections were inquired: they count towards the budget
    assert feasible_hashes(recs) != feasible_hashes(base)
    big = [r for r in inquired(recs) if r["measurements"]["params"] > limit]
    assert big, "no candidate over the ceiling was proposed"
    for r in big:
        assert r["status"] == "rejected" and r["rejected_at"] == "probe" and not r["feasible"]
        assert r["verdicts"]["param_ceiling"]["satisfied"] is False
        assert "accuracy" not in r["measurements"], "a candidate rejected after the probe must not be trained"
    for r in recs:
        if r["feasible"]:
            assert r["measurements"]["params"] <= limit
    assert rejections(typed(recs))["param_ceiling"] == len(big)


def test_python_objects_passed_to_run_search(tiny, baseline, tmp_path):
    """run_search(config, constraints=[...]) takes instances and classes as well as references."""
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("max_nodes_for_test", PLUGINS / "max_nodes.py")
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    base = records(baseline)
    smallest = min(node_count(tiny, r["genome"]) for r in base if r["feasible"])
    out = tmp_path / "run"
    result = search(tiny, out, constraints=[module.MaxNodes(smallest)], budget=1)
    assert result.evaluated == 1
    recs = records(out)
    assert all(node_count(tiny, r["genome"]) <= smallest for r in recs if r["feasible"])
    assert all("max_nodes" in r["violations"] for r in recs if r["status"] != "duplicate")


def test_a_plugin_that_raises_fails_one_candidate_and_the_search_goes_on(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["search", "--space", str(tiny), "--config", str(write_protocol(tmp_path)), "--budget", "2", "--seed", "0",
            "--out", str(out), "--no-progress", "--constraint", f"{PLUGINS / 'exploding.py'}:ExplodesOnce"]
    with one_torch_thread():
        code = main(argv)
    assert code == 0, capsys.readouterr().err
    recs = records(out)
    first = recs[0]
    assert first["status"] == "failed" and not first["feasible"]
    assert "explodes_once" in first["reason"] and "ZeroDivisionError" in first["reason"] and "kaboom" in first["reason"]
    assert first["hash"] in first["reason"]
    assert len(inquired(recs)) == 2 and all(r["status"] == "evaluated" for r in inquired(recs))
    assert (out / "final" / "attendnext.yaml").exists()


def test_a_measured_plugin_that_always_raises_fails_inquired_candidates(tiny, tmp_path):
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("exploding_for_test", PLUGINS / "exploding.py")
    module = module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "run"
    result = search(tiny, out, constraints=[module.AlwaysExplodes], budget=2)
    assert result.evaluated == 2 and result.feasible == 0 and result.best is None and result.final_dir is None
    done = inquired(records(out))
    assert len(done) == 2
    for r in done:
        assert r["status"] == "failed"
        assert "constraint 'always_explodes' raised KeyError" in r["reason"]
        assert "accuracy" not in r["measurements"]
    assert not (out / "final").exists()


def test_a_constraint_given_twice_is_a_user_error(tiny, tmp_path):
    cfg = config(tiny, tmp_path / "run")
    cfg.constraints = [*cfg.constraints, "columnar"]
    with pytest.raises(UserError, match="columnar"):
        run_search(cfg, progress=False)


# -- determinism ------------------------------------------------------------------------------------------


def genomes(run: Path) -> list[dict[str, Any]]:
    return [r["genome"] for r in records(run)]


def test_same_seed_same_genomes(tiny, baseline, tmp_path):
    again = tmp_path / "again"
    search(tiny, again)
    first, second = genomes(baseline), genomes(again)
    assert len(first) == len(second)
    for i, (a, b) in enumerate(zip(first, second)):
        assert a == b, f"candidate {i} differs"
    assert [r["hash"] for r in records(baseline)] == [r["hash"] for r in records(again)]
    assert [r["status"] for r in records(baseline)] == [r["status"] for r in records(again)]


def test_the_next_candidate_is_proposed_while_the_current_one_is_probed(baseline):
    """Proposals for the next candidate, rejections included, are recorded before the current one finishes."""
    recs = records(baseline)
    line_of = {r["number"]: i for i, r in enumerate(recs)}
    numbers = sorted(r["number"] for r in inquired(recs))
    between = [(a, n) for a, b in zip(numbers, numbers[1:]) for n in range(a + 1, b)]
    assert between, "no rejected proposals between candidates: the check below would not bite"
    assert all(line_of[n] < line_of[a] for a, n in between)


def test_different_seed_different_genomes(tiny, baseline, tmp_path):
    other = tmp_path / "seed1"
    search(tiny, other, seed=1)
    assert genomes(other) != genomes(baseline)
    assert genomes(other)[0] != genomes(baseline)[0]


# -- candidate failures ----------------------------------------------------------------------------------


def test_diverging_training_is_recorded_and_counts(tiny, tmp_path, monkeypatch):
    """A NaN loss inside the real proxy-training loop: status failed, reason 'diverged', budget still spent."""

    class NanLoss:
        def __init__(self, *args, **kwargs):
            pass

        def __call__(self, logits, labels):
            return logits.mean() * float("nan")

    monkeypatch.setattr(training_module.nn, "CrossEntropyLoss", NanLoss)
    out = tmp_path / "run"
    result = search(tiny, out, budget=2, workers=1)  # one worker trains in this process, where the patch is
    assert result.evaluated == 2 and result.feasible == 0 and result.best is None
    done = inquired(records(out))
    assert len(done) == 2
    for r in done:
        assert r["status"] == "failed" and not r["feasible"]
        assert r["reason"].startswith("train: diverged:") and "nan" in r["reason"] and r["rejected_at"] == "train"
        assert "params" in r["measurements"]  # the probe's numbers are kept


def test_crashing_training_is_recorded_and_the_search_goes_on(tiny, tmp_path, monkeypatch):
    from gensynth.search import inquisitor

    real = inquisitor.proxy_train
    calls = []

    def crash_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("simulated crash in training")
        return real(*args, **kwargs)

    monkeypatch.setattr(inquisitor, "proxy_train", crash_once)
    out = tmp_path / "run"
    result = search(tiny, out, budget=3, workers=1)  # one worker trains in this process, where the patch is
    assert result.evaluated == 3
    done = inquired(records(out))
    assert [r["status"] for r in done] == ["failed", "evaluated", "evaluated"]
    assert "crashed: RuntimeError: simulated crash in training" in done[0]["reason"]
    assert result.best is not None and result.best.number != done[0]["number"]
    assert (out / "final" / "summary.md").exists()


def test_a_graph_the_builder_rejects_fails_the_task_not_the_run():
    from gensynth.search.config import LatencyConfig
    from gensynth.search.inquisitor import ProbeTask, probe

    result = probe(ProbeTask({"nodes": [{"name": "input", "op": "input"}, {"name": "x", "op": "nope", "inputs": ["input"]}]},
                             LatencyConfig(runs=0), 1))
    assert not result.ok and result.reason.startswith("crashed:")


# -- constraints whose measurement never comes --------------------------------------------------------------


def test_a_measured_constraint_is_never_silently_skipped(tiny, tmp_path):
    """max_latency_ms with latency measurement switched off must not pass every candidate unchecked.

    Either the run refuses to start (a user error naming the constraint), or no candidate is
    called feasible without a verdict of that constraint.
    """
    cfg = config(tiny, tmp_path / "run", budget=1, **{"latency.runs": 0})
    cfg.constraints = [*cfg.constraints, {"max_latency_ms": {"limit": 1e-6}}]
    try:
        with one_torch_thread():
            run_search(cfg, progress=False)
    except UserError as err:
        assert "max_latency_ms" in str(err)
        return
    for r in records(tmp_path / "run"):
        if r["feasible"]:
            assert "max_latency_ms" in r["verdicts"], f"candidate {r['number']} is feasible but max_latency_ms was never checked"


def test_reference_beating_on_score_is_checked(tiny, tmp_path):
    """reference_beating advertises 'score'; a candidate worse than the reference must not be feasible."""
    ref = ArchGraph("minimal", 3, 64, 1000)  # tiny params and MACs: a NetScore no tiny-space candidate beats
    ref.add("input", "input")
    ref.add("blur", "blurpool", ["input"], stride=1)
    ref.add("stem", "stem", ["blur"], out_channels=8, stride=2)
    ref.add("gp", "global_pool", ["stem"])
    ref.add("fc", "classifier", ["gp"], in_channels=8)
    save(ref, tmp_path / "minimal.yaml")
    cfg = config(tiny, tmp_path / "run", budget=1)
    cfg.constraints = [*cfg.constraints, {"reference_beating": {"references": [str(tmp_path / "minimal.yaml")], "metrics": ["score"]}}]
    with one_torch_thread():
        run_search(cfg, progress=False)
    cache = json.loads((tmp_path / "run" / "references.json").read_text())
    ((label, measured),) = cache.items()
    assert label.startswith("minimal:")
    for r in records(tmp_path / "run"):
        if r["feasible"]:
            assert r["score"] > measured["score"], (
                f"candidate {r['number']} (score {r['score']:.1f}) is feasible though reference 'minimal' "
                f"scores {measured['score']:.1f}; verdicts: {sorted(r['verdicts'])}"
            )


# -- objectives -------------------------------------------------------------------------------------------


def test_netscore_formula_on_hand_values():
    # MobileNetV3-L: 75.2 % top-1, 5.48 M params, 219 M MACs
    expected = 20 * math.log10(75.2**2 / (5.48**0.5 * 0.219**0.5))
    assert netscore(75.2, 5.48e6, 219e6) == pytest.approx(expected)
    assert netscore(75.2, 5.48e6, 219e6) == pytest.approx(74.257, abs=1e-3)  # by hand
    assert netscore(75.2, 5.48e6, 219e6, alpha=1, beta=1, gamma=1) == pytest.approx(20 * math.log10(75.2 / (5.48 * 0.219)))
    assert netscore(80, 5.48e6, 219e6) > netscore(75.2, 5.48e6, 219e6)
    assert netscore(75.2, 2.0e6, 219e6) > netscore(75.2, 5.48e6, 219e6)
    assert math.isfinite(netscore(0.0, 1e6, 1e8))  # a zero-accuracy network still gets a (bad) finite score


def test_netscore_objective_reads_measurements():
    objective = make_objective(ObjectiveConfig())
    m = {"accuracy": 75.2, "params": 5.48e6, "macs": 219e6, "latency_ms": 18.0}
    assert objective.name == "netscore" and objective.directions == ("maximize",) and not objective.multi
    assert objective.scalar(m) == pytest.approx(74.257, abs=1e-3)
    assert objective.values(m) == [pytest.approx(74.257, abs=1e-3)]
    custom = make_objective(ObjectiveConfig(alpha=1.0, beta=1.0, gamma=0.0))
    assert custom.scalar(m) == pytest.approx(20 * math.log10(75.2 / 5.48))


def test_weighted_objective():
    objective = make_objective(ObjectiveConfig(name="weighted", weights={"accuracy": 1.0, "latency_ms": -0.5}))
    assert objective.scalar({"accuracy": 80.0, "latency_ms": 10.0, "params": 1e6, "macs": 1e8}) == pytest.approx(75.0)
    assert objective.values({"accuracy": 70.0, "latency_ms": 2.0, "params": 1e6, "macs": 1e8}) == [pytest.approx(69.0)]
    with pytest.raises(UserError, match="weights"):
        make_objective(ObjectiveConfig(name="weighted"))
    with pytest.raises(UserError, match="flops"):
        make_objective(ObjectiveConfig(name="weighted", weights={"flops": 1.0}))


def test_pareto_objective_and_bad_objectives():
    objective = make_objective(ObjectiveConfig(name="pareto", metrics=["accuracy", "latency_ms", "params"]))
    assert objective.multi and objective.directions == ("maximize", "minimize", "minimize")
    m = {"accuracy": 75.0, "latency_ms": 12.0, "params": 2e6, "macs": 3e8}
    assert objective.values(m) == [75.0, 12.0, 2e6]
    assert objective.placeholder()[0] < -1e6 and objective.placeholder()[1] > 1e12
    with pytest.raises(UserError):
        make_objective(ObjectiveConfig(name="pareto", metrics=["accuracy"]))
    with pytest.raises(UserError, match="nope"):
        make_objective(ObjectiveConfig(name="nope"))


def test_pareto_front_on_a_hand_example():
    directions = ("maximize", "minimize")  # accuracy up, latency down
    points = [
        ("a", [80.0, 10.0]),
        ("b", [75.0, 5.0]),
        ("c", [70.0, 12.0]),  # dominated by a (and b)
        ("d", [80.0, 10.0]),  # equal to a: neither dominates
        ("e", [85.0, 20.0]),
        ("f", [75.0, 6.0]),  # dominated by b
    ]
    assert pareto_front(points, directions) == ["a", "b", "d", "e"]
    assert dominates([80.0, 10.0], [70.0, 12.0], directions)
    assert not dominates([80.0, 10.0], [80.0, 10.0], directions)
    assert not dominates([85.0, 20.0], [75.0, 5.0], directions)
    assert pareto_front(points, ("minimize", "minimize")) == ["b", "c"]


def test_pareto_search_writes_a_front(tiny, tmp_path):
    out = tmp_path / "run"
    result = search(tiny, out, budget=2, sampler="nsga2", **{"objective.name": "pareto"})
    assert result.evaluated == 2 and result.best is not None
    recs = records(out)
    metrics = ("accuracy", "latency_ms", "params")
    for r in inquired(recs):
        assert r["values"] == [r["measurements"][m] for m in metrics]
    summary = (out / "final" / "summary.md").read_text()
    assert "## Pareto front (accuracy, latency_ms, params)" in summary
    board = front(typed(recs), metrics, ("maximize", "minimize", "minimize"))
    assert board
    section = summary.split("## Pareto front", 1)[1].split("## Files", 1)[0]
    for r in board:
        assert r.hash in section
    on_board = {r.hash for r in board}
    for r in recs:
        if r["feasible"] and r["hash"] not in on_board:
            assert r["hash"] not in section
