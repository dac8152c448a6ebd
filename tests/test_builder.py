"""Blocks, the graph → torch.fx builder, ONNX export and MAC counting of built models."""
from __future__ import annotations

import pytest
import torch
from torch import fx
from torch.utils.flop_counter import FlopCounterMode

from gensynth.cost import count_macs, count_params, export_onnx
from gensynth.ir import ArchGraph, GraphError
from gensynth.nn import (
    AttentionCondenser,
    BlurPool2d,
    ConvBNAct,
    DoubleCondensingAttentionCondenser,
    build_model,
    module_name,
    output_shape,
)

pytestmark = pytest.mark.usefixtures("one_thread")

BRANCH = {"condense": 2, "pool": "max", "ratio": 0.25, "kernel": 3, "groups": 0}


def module_shapes(model: fx.GraphModule, x: torch.Tensor) -> dict[str, tuple[int, ...]]:
    """Per-sample output shape of every graph node's submodule (by graph node name)."""
    seen: dict[str, tuple[int, ...]] = {}
    handles = [
        model.get_submodule(name).register_forward_hook(lambda m, i, o, node=node: seen.__setitem__(node, tuple(o.shape[1:])))
        for name, node in model.node_names.items()
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


# -- blocks ------------------------------------------------------------------


@pytest.mark.parametrize("size,condense", [(8, 2), (7, 4), (9, 8), (5, 1)])
def test_attention_condenser_keeps_shape(size, condense):
    block = AttentionCondenser(16, (size, size), **{**BRANCH, "condense": condense}).eval()
    x = torch.randn(2, 16, size, size)
    with torch.no_grad():
        assert block(x).shape == x.shape


@pytest.mark.parametrize("cin,cout,size", [(16, 16, 8), (16, 32, 9), (24, 8, 7)])
def test_dcac_output_shape(cin, cout, size):
    block = DoubleCondensingAttentionCondenser(cin, cout, (size, size), BRANCH, {**BRANCH, "condense": 4, "pool": "avg"}).eval()
    with torch.no_grad():
        assert block(torch.randn(2, cin, size, size)).shape == (2, cout, size, size)


def test_dcac_residual_only_when_in_equals_out():
    same = DoubleCondensingAttentionCondenser(16, 16, (8, 8), BRANCH, BRANCH).eval()
    wider = DoubleCondensingAttentionCondenser(16, 32, (8, 8), BRANCH, BRANCH).eval()
    off = DoubleCondensingAttentionCondenser(16, 16, (8, 8), BRANCH, BRANCH, residual=False).eval()
    assert same.residual is True and wider.residual is False and off.residual is False
    x = torch.randn(1, 16, 8, 8)
    with torch.no_grad():
        for block in (same, wider, off):
            block.scale.zero_()  # kills F * sigmoid(A) * S: what is left is the identity path, if any
        assert torch.equal(same(x), x)
        assert torch.count_nonzero(wider(x)) == 0
        assert torch.count_nonzero(off(x)) == 0


@pytest.mark.parametrize("filter_size", [1, 3, 5, 7])
@pytest.mark.parametrize("stride", [1, 2])
def test_blurpool_of_a_constant_image_is_constant(filter_size, stride):
    blur = BlurPool2d(3, filter_size, stride)
    assert torch.allclose(blur.filt.sum(dim=(1, 2, 3)), torch.ones(3))  # low-pass: taps sum to one
    assert torch.equal(blur.filt, blur.filt.flip(-1)) and torch.equal(blur.filt, blur.filt.transpose(-1, -2))
    x = torch.full((1, 3, 9, 9), 5.0)
    y = blur(x)
    assert y.shape == (1, 3, (9 - 1) // stride + 1, (9 - 1) // stride + 1)
    assert torch.allclose(y, torch.full_like(y, 5.0), atol=1e-5)


def test_blurpool_removes_the_nyquist_frequency():
    checker = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2 * 2.0 - 1.0  # +1/-1 checkerboard
    y = BlurPool2d(1, 3, 1)(checker.expand(1, 1, 8, 8))
    assert torch.allclose(y[..., 1:-1, 1:-1], torch.zeros(1, 1, 6, 6), atol=1e-6)
    assert not torch.allclose(torch.nn.functional.max_pool2d(checker.expand(1, 1, 8, 8), 2), torch.zeros(1, 1, 4, 4))


def test_conv_bn_act_depthwise_and_options():
    dw = ConvBNAct(8, 8, 3, 2, groups=0)
    assert dw.conv.groups == 8 and dw.conv.stride == (2, 2) and dw.conv.bias is None
    plain = ConvBNAct(8, 4, 1, act="none", bn=False)
    assert not hasattr(plain, "bn") and not hasattr(plain, "act") and plain.conv.bias is not None


# -- the builder ------------------------------------------------------------------


def test_built_model_is_a_traceable_graph_module(seed_graph, randomize):
    model = randomize(build_model(seed_graph)).eval()
    assert isinstance(model, fx.GraphModule)
    assert set(model.node_names.values()) == set(seed_graph.g.nodes) - {"input"}
    assert all(module_name(node) == name for name, node in model.node_names.items())
    traced = fx.symbolic_trace(model)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        y, z = model(x), traced(x)
    assert y.shape == (1, 1000)
    assert y.abs().max() > 1e-2  # randomised BN: the comparison below is not between near-zeros
    torch.testing.assert_close(z, y, rtol=0, atol=0)
    assert "stage0_dcac0" in model.code


def test_every_module_output_matches_inferred_shape(seed_graph):
    model = build_model(seed_graph, 160).eval()
    shapes = seed_graph.infer_shapes(160)
    assert module_shapes(model, torch.randn(1, 3, 160, 160)) == {n: s for n, s in shapes.items() if n != "input"}
    assert output_shape(model, 160) == (1000,)


def test_builder_uses_the_input_channels_and_classes(make_small_graph):
    graph = make_small_graph(num_classes=7).retarget(input_channels=1)
    model = build_model(graph).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 32, 32)).shape == (1, 7)


def test_module_name_clash_is_an_error_naming_both_nodes():
    g = ArchGraph("clash", 3, 16, 10)
    g.add("input", "input")
    g.add("a.b", "conv", ["input"], out_channels=8)
    g.add("a_b", "conv", ["a.b"], out_channels=8)
    g.add("gp", "global_pool", ["a_b"])
    g.add("fc", "classifier", ["gp"])
    g.validate()
    with pytest.raises(GraphError) as info:
        build_model(g)
    assert str(info.value) == "node 'a_b': its module name 'a_b' clashes with node 'a.b'"


def test_a_node_named_x_builds():
    """'x' is a valid node name (validate() accepts it); the builder must not trip over its own placeholder name."""
    g = ArchGraph("named-x", 3, 16, 10)
    g.add("input", "input")
    g.add("x", "conv", ["input"], out_channels=8)
    g.add("gp", "global_pool", ["x"])
    g.add("fc", "classifier", ["gp"])
    g.validate()
    model = build_model(g).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 16, 16)).shape == (1, 10)


VALID_BUT_UNBUILDABLE = {
    "maxpool padding > kernel/2": ("maxpool", {"kernel": 2, "stride": 2, "padding": 3}),
    "avgpool padding > kernel/2": ("avgpool", {"kernel": 3, "stride": 1, "padding": 2}),
    "attention condenser with an even kernel": ("attention_condenser", {"condense": 1, "kernel": 4}),
    "dcac with even kernels, no condensation": ("dcac", {"f_condense": 1, "f_kernel": 2, "a_condense": 1, "a_kernel": 2, "residual": False}),
    "dcac with an even feature kernel": ("dcac", {"f_condense": 1, "f_kernel": 2}),
}


@pytest.mark.parametrize("op,attrs", VALID_BUT_UNBUILDABLE.values(), ids=list(VALID_BUT_UNBUILDABLE))
def test_validation_accepts_only_graphs_that_build_as_inferred(op, attrs):
    """Contract: a graph either fails validate() with a GraphError, or builds and runs with the inferred shapes."""
    g = ArchGraph("edge", 8, 16, 10)
    g.add("input", "input")
    try:
        g.add("n", op, ["input"], **attrs)
        g.add("gp", "global_pool", ["n"])
        g.add("fc", "classifier", ["gp"])
        shapes = g.infer_shapes()
    except GraphError:
        return  # rejected up front: fine
    try:
        seen = module_shapes(build_model(g).eval(), torch.randn(1, 8, 16, 16))
    except RuntimeError as err:
        pytest.fail(f"validate() accepted op '{op}' {attrs}, but the built model fails: {str(err).splitlines()[0]}")
    assert seen["n"] == shapes["n"], f"validate() inferred {shapes['n']}, the built model produces {seen['n']}"


# -- export and cost ------------------------------------------------------------------


@pytest.fixture(scope="module")
def seed_and_sample(seed_graph, dcac_space):
    return {"seed": seed_graph, "sample7": dcac_space.to_graph(dcac_space.sample(7))}


@pytest.mark.parametrize("which", ["seed", "sample7"])
def test_onnx_export_matches_torch(tmp_path, seed_and_sample, randomize, which):
    ort = pytest.importorskip("onnxruntime")
    graph = seed_and_sample[which]
    model = randomize(build_model(graph), seed=1).eval()
    path = export_onnx(model, (3, 224, 224), tmp_path / f"{which}.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = model(x).numpy()
    (got,) = session.run(["logits"], {"input": x.numpy()})
    assert got.shape == (1, 1000)
    assert abs(expected).max() > 1e-2
    torch.testing.assert_close(torch.from_numpy(got), torch.from_numpy(expected), rtol=1e-4, atol=1e-4)


def test_count_macs_strict_on_the_seed(seed_graph):
    model = build_model(seed_graph).eval()
    report = count_macs(model, (3, 224, 224), strict=True)  # raises if any operator had no handle
    assert report.unsupported == {}
    assert report.macs > 0 and report.other_ops > 0
    assert sum(report.by_module.values()) == report.macs  # every MAC is attributed to a graph node
    assert set(report.by_module) == set(model.node_names)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    assert report.macs == pytest.approx(counter.get_total_flops() / 2, rel=0.01)


def test_macs_and_params_of_a_tiny_graph_by_hand():
    g = ArchGraph("tiny", 3, 32, 10)
    g.add("input", "input")
    g.add("c", "conv", ["input"], out_channels=16)  # 3*16*9 weights at 32*32 positions, BN, no bias
    g.add("gp", "global_pool", ["c"])
    g.add("fc", "classifier", ["gp"])  # 16*10 + 10
    model = build_model(g)
    report = count_macs(model, (3, 32, 32))
    assert report.macs == 3 * 16 * 9 * 32 * 32 + 16 * 10
    assert report.by_module == {"c": 3 * 16 * 9 * 32 * 32, "gp": 0, "fc": 160}
    assert count_params(model) == 3 * 16 * 9 + 2 * 16 + 16 * 10 + 10
