"""The inference form (batch norm folded, re-parameterised) computes what the training form computes in eval mode.

Checked on randomised models (BN statistics and scales far from identity, so a
wrong fold shows) of the dcac seed, sampled dcac architectures and every file of
the reference zoo (new references are covered by being there).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from conftest import randomize_
from gensynth.ir import ArchGraph, load
from gensynth.nn import build_model, inference_form

REFERENCES = sorted(p for p in (Path(__file__).parents[1] / "search_spaces" / "references").glob("*") if p.suffix in (".yaml", ".yml", ".json"))


def batchnorms(model: nn.Module) -> int:
    return sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def check_equal_and_folded(graph: ArchGraph, resolution: int | None = None) -> None:
    """Equal within 1e-4, compared in float64: the forms compute the same function, and float32 rounding alone
    reaches 1e-4 on outputs near zero beside logits in the hundreds (MobileOne with randomised BN)."""
    model = randomize_(build_model(graph, resolution)).eval().double()
    deployed = inference_form(model)
    x = torch.randn(2, graph.input_channels, *(2 * [resolution or graph.resolution]), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(deployed(x), model(x), rtol=1e-4, atol=1e-4)
    assert batchnorms(model) > 0 and batchnorms(deployed) == 0  # every BN here follows a convolution


@pytest.mark.usefixtures("one_thread")
def test_the_dcac_seed(seed_graph):
    check_equal_and_folded(seed_graph)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("seed", range(20))
def test_sampled_dcac_architectures_at_64px(dcac_space, seed):
    check_equal_and_folded(dcac_space.to_graph(dcac_space.sample(seed)), 64)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("path", REFERENCES, ids=[p.stem for p in REFERENCES])
def test_every_reference(path):
    check_equal_and_folded(load(path))


@pytest.mark.usefixtures("one_thread")
def test_the_input_model_is_unchanged(make_small_graph):
    model = randomize_(build_model(make_small_graph())).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kinds = [type(m) for m in model.modules()]
    inference_form(model)
    assert model.training and [type(m) for m in model.modules()] == kinds
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


class Twice(nn.Module):
    """A convolution read by its batch norm and by the residual: folding it would change the sum."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        return self.bn(y) + y


class Gated(nn.Module):
    """A conv → BN pair in a custom forward (found by tracing), beside one that fx cannot trace."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.bn, self.twice = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4), Twice()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.bn(self.conv(x))) * self.twice(x)


class Untraceable(Gated):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # data-dependent control flow: symbolic tracing fails
            return self.bn(self.conv(x))
        return self.bn(self.conv(-x))


class Merges(nn.Module):
    """Follows the re-parameterisation protocol: ``reparameterize()`` returns one equivalent module."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.inner = Merges.Inner()

    class Inner(nn.Identity):
        def reparameterize(self) -> nn.Module:
            raise AssertionError("the outermost module re-parameterises its children")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a(x) + self.b(x)

    def reparameterize(self) -> nn.Module:
        merged = nn.Conv2d(4, 4, 3, padding=1)
        merged.weight.data, merged.bias.data = self.a.weight + self.b.weight, self.a.bias + self.b.bias
        return merged


def test_custom_forwards_fold_only_where_the_conv_output_goes_to_the_bn_alone():
    model = randomize_(nn.Sequential(Gated(), Merges()))
    deployed = inference_form(model)
    x = torch.randn(2, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(deployed(x), model.eval()(x), rtol=1e-4, atol=1e-4)
    assert isinstance(deployed[0].bn, nn.Identity) and isinstance(deployed[0].twice.bn, nn.BatchNorm2d)
    assert type(deployed[1]) is nn.Conv2d


def test_a_forward_fx_cannot_trace_is_left_as_it_is():
    deployed = inference_form(randomize_(Untraceable()))
    assert isinstance(deployed.bn, nn.BatchNorm2d) and isinstance(deployed.twice.bn, nn.BatchNorm2d)


def test_reparameterize_must_return_a_module():
    class Broken(nn.Identity):
        def reparameterize(self) -> None:
            return None

    with pytest.raises(TypeError, match=r"the rewrite of Broken returned NoneType, not a module"):
        inference_form(nn.Sequential(Broken()))
