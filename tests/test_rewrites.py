"""The attention condensers' inference rewrites (gensynth/nn/rewrites.py) compute the training form's function.

Checked on randomised models (BN statistics and scales far from identity) of
the dcac seed and 20 sampled dcac architectures at 64 and 96 px, in torch
(float32, and float64 to show that the difference is rounding alone) and through
ONNX in onnxruntime; and block by block on hand-picked sizes that the condensing
factors do not divide, where the branches must meet at full resolution.
"""
from __future__ import annotations

import itertools

import pytest
import torch

from conftest import randomize_
from gensynth.cost.onnx_export import export_onnx
from gensynth.ir import ArchGraph
from gensynth.nn import AttentionCondenser, DoubleCondensingAttentionCondenser, build_model, inference_form
from gensynth.nn.rewrites import CondensedAttention, CondensedDCAC
from gensynth.space import load_space

ort = pytest.importorskip("onnxruntime")

TOL = {"rtol": 1e-5, "atol": 1e-5}


def rewritten(model: torch.nn.Module) -> list[CondensedDCAC]:
    return [m for m in model.modules() if isinstance(m, CondensedDCAC)]


def check(graph: ArchGraph, resolution: int, tmp_path) -> None:
    model = randomize_(build_model(graph, resolution)).eval()
    blocks = sum(isinstance(m, DoubleCondensingAttentionCondenser) for m in model.modules())
    deployed = inference_form(model)
    assert blocks > 0 and len(rewritten(deployed)) == blocks
    x = torch.randn(2, graph.input_channels, resolution, resolution, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(deployed(x), model(x), **TOL)
        wide = model.double()
        torch.testing.assert_close(inference_form(wide)(x.double()), wide(x.double()), rtol=1e-12, atol=1e-12)
        expected = deployed(x).numpy()
    path = export_onnx(deployed, (graph.input_channels, resolution, resolution), tmp_path / "m.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    torch.testing.assert_close(session.run(None, {"input": x.numpy()})[0], expected, **TOL)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("resolution", [64, 96])
def test_the_dcac_seed(seed_graph, resolution, tmp_path):
    check(seed_graph, resolution, tmp_path)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("seed,resolution", [
    pytest.param(seed, resolution, marks=[pytest.mark.slow] if seed >= 3 else [])  # 3 × 2 in `make test`, all 20 × 2 in `make test-all`
    for seed, resolution in itertools.product(range(20), [64, 96])
])
def test_sampled_dcac_architectures(dcac_space, seed, resolution, tmp_path):
    check(dcac_space.to_graph(dcac_space.sample(seed)), resolution, tmp_path)


def test_where_the_seed_multiplies():
    """At 224 px: the 112-px blocks (f 2, a 4) meet at 56 px, the 28-px ones (f 2, a 2) at 14; f_condense 1 at full size."""
    sizes = [m.product_size for m in rewritten(inference_form(build_model(load_space("dcac").seed_graph(), 224)))]
    assert sizes == 8 * [(56, 56)] + 2 * [(14, 14)] + 5 * [None]


@pytest.mark.parametrize(
    "size,f_condense,a_condense,meets",
    [
        ((8, 8), 2, 2, (4, 4)),   # same factor: the product at the condensed size
        ((8, 8), 2, 4, (4, 4)),   # factors divide: the coarser branch upsampled to the finer one first
        ((8, 8), 4, 2, (4, 4)),
        ((7, 5), 2, 2, (4, 3)),   # same factor, sizes it does not divide: still one gather, still exact
        ((7, 7), 2, 4, (4, 4)),   # 2 → 4 → 7 gathers what 2 → 7 does, though neither factor divides 7
        ((7, 7), 2, 3, None),     # 3 → 4 → 7 differs from 3 → 7: the branches meet at full resolution
        ((6, 6), 2, 4, None),     # 2 → 3 → 6 differs from 2 → 6
        ((8, 8), 1, 2, None),     # uncondensed feature branch: sigmoid condensed, product at full resolution
        ((8, 8), 2, 1, None),
        ((8, 8), 1, 1, None),
    ],
)
def test_dcac_blocks(size, f_condense, a_condense, meets):
    branch = {"pool": "max", "ratio": 0.5, "kernel": 3, "groups": 0}
    block = randomize_(DoubleCondensingAttentionCondenser(8, 8, size, {**branch, "condense": f_condense}, {**branch, "condense": a_condense, "pool": "avg"}))
    deployed = inference_form(block)
    assert isinstance(deployed, CondensedDCAC) and deployed.product_size == meets
    x = torch.randn(3, 8, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(deployed(x), block.eval()(x), **TOL)


@pytest.mark.parametrize("size,condense", [((8, 8), 2), ((7, 5), 4), ((8, 8), 1)])
def test_attention_condenser_blocks(size, condense):
    block = randomize_(AttentionCondenser(8, size, condense))
    deployed = inference_form(block)
    assert isinstance(deployed, CondensedAttention)
    x = torch.randn(3, 8, *size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(deployed(x), block.eval()(x), **TOL)
