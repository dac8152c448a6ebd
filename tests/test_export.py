"""Exports a deployer can use: ONNX with a dynamic batch axis, labelled trained or untrained; standalone PyTorch source.

The PyTorch files run in one ``python -I -S`` subprocess that puts only the
venv's site-packages on its path (not its ``.pth`` files, so not the editable
gensynth either): each must rebuild gensynth's network from plain torch code,
load its state dict strictly and compute the same outputs.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gensynth.cli.main import main
from gensynth.cost import export_onnx
from gensynth.export import UNTRAINED, graph_to_onnx, to_pytorch_source, unsupported_reason
from gensynth.ir import ArchGraph, list_ops, save
from gensynth.nn import build_model

pytestmark = pytest.mark.usefixtures("one_thread")

RESOLUTION = 64
SAMPLES = range(10)


def hand_graph() -> ArchGraph:
    """Every op the exporter supports, once, at 32 px; ``1x1`` is not a Python identifier (a name the export must quote)."""
    g = ArchGraph("every op", 3, 32, 10)
    g.add("input", "input")
    g.add("stem", "stem", ["input"], out_channels=16, stride=2)                            # 16×16×16
    g.add("1x1", "conv", ["stem"], out_channels=16, kernel=1)
    g.add("dw", "dwconv", ["1x1"], out_channels=16)
    g.add("pw", "pwconv", ["dw"], out_channels=16, act="hswish")
    g.add("gc", "gconv", ["pw"], out_channels=16, groups=4)
    g.add("mo", "mobileone_block", ["gc"], out_channels=16, branches=2)
    g.add("se", "squeeze_excitation", ["mo"])
    g.add("ac", "attention_condenser", ["mo"], pool="avg")
    g.add("sum", "add", ["se", "ac"], act="relu")
    g.add("dc", "dcac", ["sum"], out_channels=24, f_condense=4, a_groups=0)               # 24×16×16
    g.add("tr", "transformer", ["dc"], heads=4, patch=2)
    g.add("cat", "concat", ["tr", "sum"])                                                 # 40×16×16
    g.add("blur", "blurpool", ["cat"])                                                    # 40×8×8
    g.add("ap", "avgpool", ["blur"])                                                      # 40×4×4
    g.add("mp", "maxpool", ["ap"], kernel=3, stride=2, padding=1)                         # 40×2×2
    g.add("gp", "global_pool", ["mp"])
    g.add("fc", "classifier", ["gp"], dropout=0.1)
    return g


HAND_OPS = {graph.op(node) for graph in [hand_graph()] for node in graph.order()}


@pytest.mark.parametrize("op", list_ops())
def test_every_op_is_exported_or_skipped_with_its_reason(op):
    reason = unsupported_reason(op)
    if reason is not None:
        pytest.skip(f"not exported: {reason}")
    assert op in HAND_OPS, f"op '{op}' is exportable: add it to hand_graph() so its source is checked"


# -- standalone PyTorch --------------------------------------------------------------------------------------

RUNNER = """
import importlib.util, sys
folder, site = sys.argv[1:]
sys.path.append(site)  # torch, without the .pth files (so without the editable gensynth)
try:
    import gensynth
except ImportError:
    pass
else:
    raise SystemExit("gensynth is importable in the isolated subprocess")
import torch
torch.set_num_threads(1)
cases = torch.load(f"{folder}/cases.pt")
outputs = {}
for name, (x, state) in cases.items():
    spec = importlib.util.spec_from_file_location(name, f"{folder}/{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    net = module.Net()
    net.load_state_dict(state, strict=True)
    with torch.no_grad():
        outputs[name] = net.eval()(x)
torch.save(outputs, f"{folder}/outputs.pt")
"""


def gensynth_imports(source: str) -> list[str]:
    """Imports of gensynth, or relative ones, in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "gensynth"]
        elif isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").split(".")[0] == "gensynth"):
            found.append("." * node.level + (node.module or ""))
    return found


@pytest.fixture(scope="module")
def exported(tmp_path_factory, dcac_space, seed_graph, randomize):
    """name → (expected outputs, outputs of the standalone file): the seed, 10 samples at 64 px, the hand graph at 32 px."""
    folder = tmp_path_factory.mktemp("pytorch")
    graphs = {"seed": (seed_graph, RESOLUTION), "hand": (hand_graph(), None)}
    graphs |= {f"sample{i}": (dcac_space.to_graph(dcac_space.sample(i)), RESOLUTION) for i in SAMPLES}
    cases, expected = {}, {}
    for i, (name, (graph, resolution)) in enumerate(graphs.items()):
        source = to_pytorch_source(graph, resolution)
        assert not gensynth_imports(source), name
        (folder / f"{name}.py").write_text(source)
        model = randomize(build_model(graph, resolution), seed=i).eval()
        x = torch.randn(2, *graph.input_shape(resolution), generator=torch.Generator().manual_seed(i))
        with torch.no_grad():
            expected[name] = model(x)
        cases[name] = (x, model.state_dict())
    torch.save(cases, folder / "cases.pt")
    (folder / "runner.py").write_text(RUNNER)
    site = str(Path(torch.__file__).parents[1])
    proc = subprocess.run([sys.executable, "-I", "-S", str(folder / "runner.py"), str(folder), site],
                          cwd=folder, capture_output=True, text=True, timeout=300, env={"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    outputs = torch.load(folder / "outputs.pt")
    return {name: (expected[name], outputs[name]) for name in graphs}


@pytest.mark.parametrize("name", ["seed", "hand", *(f"sample{i}" for i in SAMPLES)])
def test_standalone_pytorch_matches_the_built_model(exported, name):
    expected, got = exported[name]
    assert expected.abs().max() > 1e-2  # randomised batch norms: not a near-zero output
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_cli_writes_pytorch_and_checks_the_weights(tmp_path, seed_graph, capsys):
    graph_file, weights, out = tmp_path / "seed.yaml", tmp_path / "w.pt", tmp_path / "sub" / "net.py"
    save(seed_graph, graph_file)
    torch.save(build_model(seed_graph, RESOLUTION).state_dict(), weights)
    args = ["export", str(graph_file), "--out", str(out), "--resolution", str(RESOLUTION)]
    assert main([*args, "--weights", str(weights)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert out.read_text() == to_pytorch_source(seed_graph, RESOLUTION)
    # weights of another resolution still fit (no parameter depends on it); another head does not
    torch.save(build_model(seed_graph.retarget(num_classes=10)).state_dict(), weights)
    assert main([*args, "--weights", str(weights), "--out", str(tmp_path / "other.py")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not fit" in err and "final/proxy.yaml" in err
    assert not (tmp_path / "other.py").exists()


def test_an_op_without_source_is_one_line_naming_the_node(tmp_path, capsys, monkeypatch):
    from gensynth.export import pytorch

    monkeypatch.delitem(pytorch.EMITTERS, "blurpool")
    graph = hand_graph()
    save(graph, tmp_path / "g.yaml")
    assert main(["export", str(tmp_path / "g.yaml"), "--out", str(tmp_path / "net.py")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "node 'blur'" in err and "blurpool" in err


# -- ONNX --------------------------------------------------------------------------------------------------


def onnx_session(path: Path):
    ort = pytest.importorskip("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def test_onnx_has_a_dynamic_batch_axis(tmp_path, dcac_space, randomize):
    graph = dcac_space.to_graph(dcac_space.sample(3))
    model = randomize(build_model(graph, RESOLUTION), seed=3).eval()
    session = onnx_session(export_onnx(model, graph.input_shape(RESOLUTION), tmp_path / "m.onnx"))
    assert session.get_inputs()[0].shape == ["batch", 3, RESOLUTION, RESOLUTION]
    for batch in (1, 3):
        x = torch.randn(batch, 3, RESOLUTION, RESOLUTION)
        with torch.no_grad():
            expected = model(x)
        (got,) = session.run(["logits"], {"input": x.numpy()})
        assert got.shape == (batch, 1000)
        torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-4, atol=1e-4)


def test_onnx_says_whether_its_weights_are_trained(tmp_path, seed_graph, randomize, capsys):
    onnx = pytest.importorskip("onnx")
    graph = seed_graph.retarget(resolution=RESOLUTION, num_classes=10)
    save(graph, tmp_path / "g.yaml")
    assert main(["export", str(tmp_path / "g.yaml"), "--format", "onnx", "--out", str(tmp_path / "untrained.onnx")]) == 0
    assert "UNTRAINED" in capsys.readouterr().out
    untrained = onnx.load(str(tmp_path / "untrained.onnx"))
    assert untrained.doc_string.startswith(UNTRAINED)
    assert {p.key: p.value for p in untrained.metadata_props}["gensynth.weights"] == "untrained"

    model = randomize(build_model(graph), seed=5).eval()
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    path = graph_to_onnx(graph, tmp_path / "trained.onnx", weights=tmp_path / "weights.pt")
    trained = onnx.load(str(path))
    props = {p.key: p.value for p in trained.metadata_props}
    assert "UNTRAINED" not in trained.doc_string and "weights.pt" in trained.doc_string
    assert props["gensynth.weights"] == "trained" and props["gensynth.hash"] == graph.structural_hash()
    x = torch.randn(3, 3, RESOLUTION, RESOLUTION)
    with torch.no_grad():
        expected = model(x)
    (got,) = onnx_session(path).run(["logits"], {"input": x.numpy()})
    torch.testing.assert_close(torch.from_numpy(got), expected, rtol=1e-4, atol=1e-4)
