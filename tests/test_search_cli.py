"""The search from the command line: an end-to-end run of the shipped space, `show`, `constraints list`, bad input.

The end-to-end run uses the real ``dcac`` space at budget 2 with a tiny proxy
protocol; bad input is checked on subprocesses of the installed ``gensynth``
script, all started at once. The fixtures are session-scoped: under pytest-xdist
a module fixture is set up again whenever another module's test came in between
on the same worker, so the end-to-end run and the bad-input subprocesses ran
several times per worker.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import networkx as nx
import optuna
import pytest
import torch
import yaml

from gensynth.cli.main import main
from gensynth.constraint import Candidate
from gensynth.constraints.antialiased_downsampling import AntialiasedDownsampling
from gensynth.constraints.columnar import Columnar
from gensynth.constraints.pointwise_strided import PointwiseStrided
from gensynth.export import build_with_weights
from gensynth.ir import load
from gensynth.nn.builder import build_model
from gensynth.plugins import installed_constraints
from gensynth.search.mirror import open_storage
from gensynth.search.protocol import binomial_se
from gensynth.search.store import RunStore
from gensynth.search.report import leaderboard, rejections, status_counts
from tiny_space import main_one_thread, write_protocol

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ROOT / "tests" / "plugins"
GENSYNTH = Path(sys.executable).with_name("gensynth")
if not GENSYNTH.exists():  # not run from the venv's own python
    GENSYNTH = Path(shutil.which("gensynth") or GENSYNTH)
FINAL = ("attendnext.yaml", "attendnext.graphml", "attendnext.svg", "attendnext.onnx", "attendnext_proxy_trained.onnx", "weights.pt",
         "summary.md", "proxy.yaml")


def records(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "candidates.jsonl").read_text().splitlines()]


# -- end to end -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def e2e(tmp_path_factory) -> Path:
    """`gensynth search` on the shipped dcac space, budget 2, ONNX export on."""
    root = tmp_path_factory.mktemp("e2e")
    cfg = write_protocol(root, export_onnx=True, report=True)
    run = root / "run"
    code = main_one_thread(["search", "--config", str(cfg), "--space", "dcac", "--budget", "2", "--seed", "0", "--name", "e2e",
                            "--out", str(run), "--no-progress"])
    assert code == 0
    return run


def test_search_writes_the_run_report(e2e):
    page = (e2e / "report" / "index.html").read_text()
    assert "<img" in page and "http://" not in page and "https://" not in page
    assert any((e2e / "report").glob("*.png")) and any((e2e / "report").glob("*.svg"))


def test_run_directory_holds_config_candidates_and_study(e2e):
    for name in ("config.yaml", "candidates.jsonl", "study.log"):
        assert (e2e / name).is_file(), name
    saved = yaml.safe_load((e2e / "config.yaml").read_text())
    assert saved["budget"] == 2 and saved["space"] == "dcac" and saved["training"]["batch_size"] == 32
    recs = records(e2e)
    assert sum(r["inquired"] for r in recs) == 2


@pytest.mark.parametrize("name", FINAL)
def test_final_files(e2e, name):
    if name == "attendnext.svg" and shutil.which("dot") is None:
        pytest.skip("graphviz's dot is not installed")
    if name.endswith(".onnx"):
        pytest.importorskip("onnx")
    path = e2e / "final" / name
    assert path.is_file() and path.stat().st_size > 0, name


def best_record(run: Path) -> dict:
    feasible = [r for r in records(run) if r["feasible"]]
    return max(feasible, key=lambda r: r["score"])


def test_emitted_graph_is_the_best_and_keeps_the_rules(e2e):
    graph = load(e2e / "final" / "attendnext.yaml")
    assert graph.structural_hash() == best_record(e2e)["hash"]
    candidate = Candidate({}, graph, graph.structural_hash())
    for constraint in (Columnar(), PointwiseStrided(), AntialiasedDownsampling()):
        verdict = constraint.check(candidate)
        assert verdict.satisfied, f"{constraint.name}: {verdict.reason}"
    graphml = nx.read_graphml(e2e / "final" / "attendnext.graphml")
    assert graphml.number_of_nodes() == len(graph)


def test_emitted_onnx_is_a_valid_model(e2e):
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(e2e / "final" / "attendnext.onnx"))
    onnx.checker.check_model(model)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1:] == [3, 224, 224]


def test_emitted_onnx_files_say_which_is_trained(e2e):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    final = e2e / "final"
    untrained, trained = (onnx.load(str(final / name)) for name in ("attendnext.onnx", "attendnext_proxy_trained.onnx"))
    assert untrained.doc_string.startswith("UNTRAINED") and "UNTRAINED" not in trained.doc_string
    assert {p.key: p.value for p in trained.metadata_props}["gensynth.weights_file"] == "weights.pt"
    summary = (final / "summary.md").read_text()
    assert "UNTRAINED" in next(line for line in summary.splitlines() if line.startswith("- `attendnext.onnx`"))
    assert "- `attendnext_proxy_trained.onnx`: the proxy-trained network" in summary
    proxy = load(final / "proxy.yaml")
    model = build_with_weights(proxy, final / "weights.pt")
    x = torch.randn(3, proxy.input_channels, proxy.resolution, proxy.resolution)
    with torch.no_grad():
        expected = model(x)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(final / "attendnext_proxy_trained.onnx"), options, providers=["CPUExecutionProvider"])
    (got,) = session.run(["logits"], {"input": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-4, atol=1e-4)


def test_emitted_svg_is_a_diagram(e2e):
    if shutil.which("dot") is None:
        pytest.skip("graphviz's dot is not installed")
    svg = (e2e / "final" / "attendnext.svg").read_text()
    assert "<svg" in svg and "stem" in svg


def test_weights_load_into_the_proxy_model(e2e):
    proxy = load(e2e / "final" / "proxy.yaml")
    model = build_model(proxy)
    state = torch.load(e2e / "final" / "weights.pt", map_location="cpu")
    missing, unexpected = model.load_state_dict(state, strict=True)
    assert not missing and not unexpected
    assert any(v.abs().sum() > 0 for v in state.values())
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, proxy.input_channels, proxy.resolution, proxy.resolution))
    assert out.shape == (2, proxy.num_classes)
    # the trained weights are not the initialisation: a fresh model differs
    fresh = build_model(proxy).state_dict()
    assert any(not torch.equal(fresh[k], state[k]) for k in state if state[k].is_floating_point())


def test_summary(e2e):
    text = (e2e / "final" / "summary.md").read_text()
    best = best_record(e2e)
    assert best["hash"] in text
    for heading in ("## Constraints", "## Leaderboard", "## Run", "Rejections per constraint"):
        assert heading in text, heading
    for name in ("columnar", "pointwise_strided", "antialiased_downsampling"):
        assert f"| {name} | ok |" in text
    se = binomial_se(best["measurements"]["accuracy"], 50)  # the tiny protocol's 50 validation images
    assert f"proxy top-1 {best['measurements']['accuracy']:.2f} % ± {se:.2f} (binomial SE)" in text
    assert f"| {best['measurements']['accuracy']:.2f} ± {se:.2f} |" in text, "the leaderboard's top-1 carries its standard error"


def test_optuna_storage_holds_every_candidate(e2e):
    lines = (e2e / "candidates.jsonl").read_text().splitlines()
    study = optuna.load_study(study_name="e2e", storage=open_storage(str(e2e / "study.log")))
    trials = study.get_trials(deepcopy=False)
    records = {r["number"]: r for r in map(json.loads, lines)}  # lines are in the order candidates finished
    assert [t.number for t in trials] == sorted(records)
    assert all(t.values == records[t.number]["values"] for t in trials)


def test_show_prints_leaderboard_and_rejections(e2e, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["show", str(e2e)]) == 0
    out = capsys.readouterr().out
    recs = RunStore(e2e).records()
    assert "leaderboard" in out
    for record in leaderboard(recs):
        assert record.hash in out
        assert f"{record.measurements['accuracy']:.2f} ± {binomial_se(record.measurements['accuracy'], 50):.2f}" in out
    assert "rejections per constraint" in out
    counts = rejections(recs)
    assert counts, "the shipped space always breaks some rule in a few proposals"
    lines = out.splitlines()
    for name, count in counts.items():
        assert any(name in line and f" {count} " in f" {line.replace('│', ' ')} " for line in lines), (name, count)
    for status, count in status_counts(recs).items():
        assert f"{status} {count}" in out


def test_show_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert main(["show", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "not a run directory" in err and len(err.strip().splitlines()) == 1


# -- constraints list -------------------------------------------------------------------------------------


def table_rows(text: str) -> list[list[str]]:
    """Rows of a rich table, continuation lines joined, whitespace removed from every cell."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip("│").split("│")]
        if cells[0] or not rows:
            rows.append(cells)
        else:
            rows[-1] = [a + " " + b for a, b in zip(rows[-1], cells)]
    return [["".join(c.split()) for c in row] for row in rows]


def squeeze(text: str) -> str:
    return "".join(text.split())


def test_constraints_list_shows_every_builtin(capsys):
    assert main(["constraints", "list"]) == 0
    rows = {row[0]: row for row in table_rows(capsys.readouterr().out)}
    for name in ("columnar", "pointwise_strided", "antialiased_downsampling", "reference_beating",
                 "max_params", "max_macs", "max_latency_ms"):
        assert name in rows, name
        info = installed_constraints()[name]
        _, stage, doc, origin = rows[name]
        assert stage == info.cls.stage
        assert doc == squeeze(info.doc) and doc
        assert origin == squeeze(info.origin) and "entrypoint" in origin


def test_constraints_list_shows_a_file_plugin(capsys):
    ref = f"{PLUGINS / 'max_nodes.py'}:MaxNodes"
    assert main(["constraints", "list", ref]) == 0
    rows = {row[0]: row for row in table_rows(capsys.readouterr().out)}
    assert "max_nodes" in rows and "columnar" in rows
    _, stage, doc, origin = rows["max_nodes"]
    assert stage == "structural"
    assert doc == squeeze("At most ``limit`` nodes (operations) in the architecture graph.")
    assert origin == squeeze(f"file {PLUGINS / 'max_nodes.py'}")


def test_constraints_list_with_a_relative_plugin_path(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["constraints", "list", "tests/plugins/max_params_measured.py:ParamCeiling"]) == 0
    rows = {row[0]: row for row in table_rows(capsys.readouterr().out)}
    assert rows["param_ceiling"][1] == "measured"
    assert rows["param_ceiling"][3] == squeeze("file tests/plugins/max_params_measured.py")


def test_constraints_list_with_a_missing_file(capsys):
    assert main(["constraints", "list", "/nonexistent/rules.py:Rule"]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and len(err.strip().splitlines()) == 1


# -- bad input: one line on stderr, exit code 2 -------------------------------------------------------------

NOT_A_CONSTRAINT = "class NotAConstraint:\n    name = 'nope'\n"
BROKEN_PLUGIN = "from gensynth.constraint import Constraint\nclass Broken(Constraint:\n"

# name → (arguments after `gensynth search`, config YAML or None, words the message must contain)
BAD_INPUT = {
    "unknown_space": (["--space", "no_such_space"], None, ["unknown space", "no_such_space"]),
    "unknown_constraint": (["--constraint", "no_such_rule"], None, ["unknown constraint", "no_such_rule"]),
    "missing_plugin_file": (["--constraint", "/nonexistent/rules.py:Rule"], None, ["/nonexistent/rules.py", "no such file"]),
    "unknown_config_key": ([], {"trainin": {}}, ["unknown key", "trainin", "config.yaml"]),
    "unknown_nested_key": ([], {"training": {"epoch": 1}}, ["unknown key", "training.epoch", "config.yaml"]),
    "missing_dataset": (["--data", "/nonexistent/dataset"], None, ["/nonexistent/dataset"]),
    "wrong_type": ([], {"budget": "ten"}, ["budget", "int", "ten"]),
    "unknown_sampler": (["--sampler", "bogus"], None, ["sampler", "bogus"]),
}

# more of the same, checked in-process (a subprocess each would cost ~2 s of torch import)
MORE_BAD_INPUT = {
    "unknown_objective": (["--objective", "bogus"], None, ["objective", "bogus"]),
    "zero_budget": (["--budget", "0"], None, ["budget"]),
    "budget_not_a_number": (["--budget", "ten"], None, ["--budget", "ten"]),
    "bad_constraint_option_name": ([], {"constraints": [{"columnar": {"columns": 2}}]}, ["columnar", "columns"]),
    "plugin_not_a_constraint": (["--constraint", "{dir}/not_one.py:NotAConstraint"], None, ["NotAConstraint", "Constraint"]),
    "plugin_that_does_not_import": (["--constraint", "{dir}/broken.py:Broken"], None, ["broken.py", "SyntaxError"]),
    "plugin_without_the_class": (["--constraint", "{dir}/not_one.py:Missing"], None, ["Missing"]),
    # found while writing these tests: each of these ends in a traceback or a left-over run directory today
    "budget_limit_not_positive": ([], {"constraints": [{"max_params": {"limit": 0}}]}, ["max_params", "limit"]),
    "budget_limit_not_a_number": ([], {"constraints": [{"max_params": {"limit": "ten"}}]}, ["max_params", "limit"]),
    "constraint_given_twice": (["--constraint", "columnar"], None, ["columnar", "twice"]),
    "missing_reference_file": ([], {"constraints": [{"reference_beating": {"references": ["/nonexistent/ref.yaml"]}}]},
                               ["/nonexistent/ref.yaml"]),
}

COMMON = ["--budget", "1", "--no-progress", "--train-images", "64", "--val-images", "50", "--latency-runs", "1"]


def search_argv(folder: Path, plugins: Path, args: list[str], cfg: dict | None) -> list[str]:
    argv = ["search", "--out", str(folder / "run"), *COMMON, *[a.replace("{dir}", str(plugins)) for a in args]]
    if cfg is not None:
        (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
        argv += ["--config", str(folder / "config.yaml")]
    return argv


def check_one_line(code: int, err: str, run: Path, words: list[str]) -> None:
    assert "Traceback" not in err, err[-2000:]
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{err[-2000:]}"
    assert lines[0].startswith("gensynth")
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert code == 2
    assert not run.exists(), "bad input must not leave a half-made run directory behind"


@pytest.fixture(scope="session")
def plugin_files(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("plugins")
    (root / "not_one.py").write_text(NOT_A_CONSTRAINT)
    (root / "broken.py").write_text(BROKEN_PLUGIN)
    return root


@pytest.fixture(scope="session")
def bad_input_results(tmp_path_factory, plugin_files):
    """Run every bad-input command as a subprocess of the gensynth script, all at once; collect the results."""
    root = tmp_path_factory.mktemp("bad")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = {}
    for name, (args, cfg, _) in BAD_INPUT.items():
        folder = root / name
        folder.mkdir()
        argv = [str(GENSYNTH), *search_argv(folder, plugin_files, args, cfg)]
        procs[name] = (subprocess.Popen(argv, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), folder)
    results = {}
    for name, (proc, folder) in procs.items():
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        results[name] = (proc.returncode, err, folder / "run")
    return results


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_and_exit_2(bad_input_results, case):
    check_one_line(*bad_input_results[case], BAD_INPUT[case][2])


@pytest.mark.parametrize("case", list(MORE_BAD_INPUT))
def test_more_bad_input_is_one_line_and_exit_2(case, plugin_files, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, cfg, words = MORE_BAD_INPUT[case]
    try:
        code = main(search_argv(tmp_path, plugin_files, args, cfg))
    except SystemExit as exit:  # argparse
        code = exit.code
    check_one_line(code, capsys.readouterr().err, tmp_path / "run", words)
