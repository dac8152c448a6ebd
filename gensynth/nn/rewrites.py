"""Exact inference rewrites of the attention condensers (see docs/blocks.md, "Inference rewrites").

Nearest-neighbour upsampling is a gather: ``up(X)[i] = X[idx(i)]``. Any element-wise
function commutes with a gather, bit for bit, so the sigmoid, the per-channel scale
and the product of two maps gathered by the *same* index map can run before the
gather, at the condensed resolution, and one upsampling remains at full resolution.
Two branches condensed to different sizes meet at the finer one when upsampling the
coarser one there and then to full resolution gathers the same pixels as upsampling it
straight to full resolution (checked on torch's own index maps, so it holds also for
sizes the condensing factor does not divide); otherwise they meet at full resolution.
The DC-AC's learned scale is folded into the feature branch's last batch norm
(``S·BN(y)`` is a batch norm with weight and bias times ``S``), which inference_form
then folds into the projection.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

from .blocks import AttentionCondenser, DoubleCondensingAttentionCondenser

Size = tuple[int, int]


class CondensedAttention(nn.Module):
    """Attention condenser at inference: ``V * up(sigmoid(A) * S)``, the gate computed at the condensed resolution."""

    def __init__(self, attention: nn.Module, scale: torch.Tensor, expand: nn.Module):
        super().__init__()
        self.attention, self.expand = attention, expand
        self.scale = nn.Parameter(scale.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.expand(torch.sigmoid(self.attention(x)) * self.scale)


class CondensedDCAC(nn.Module):
    """DC-AC at inference: ``up(up_f(F·S) * up_a(sigmoid(A))) (+ V)``, the product at ``product_size`` (``None``: full).

    ``F·S`` is the feature branch with the scale folded in; ``up_f``/``up_a`` bring a
    branch to the resolution where the branches meet (identity where it is already
    there) and ``expand`` is the one upsampling from there to full resolution.
    """

    def __init__(self, feature: nn.Module, attention: nn.Module, feature_up: nn.Module, attention_up: nn.Module, expand: nn.Module, residual: bool, product_size: Size | None):
        super().__init__()
        self.feature, self.attention = feature, attention
        self.feature_up, self.attention_up, self.expand = feature_up, attention_up, expand
        self.residual, self.product_size = residual, product_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.expand(self.feature_up(self.feature(x)) * self.attention_up(torch.sigmoid(self.attention(x))))
        return out + x if self.residual else out


def _split(branch: nn.Module) -> tuple[nn.Sequential, Size | None, Size | None]:
    """A copy of ``branch`` without its upsampling, the size it computes at and the full size (``None``: uncondensed)."""
    expand = getattr(branch, "expand", None)
    layers = nn.Sequential(*(copy.deepcopy(m) for name, m in branch.named_children() if name != "expand"))
    if expand is None:
        return layers, None, None
    k, full = branch.condense.kernel_size, tuple(expand.size)
    return layers, (math.ceil(full[0] / k), math.ceil(full[1] / k)), full  # ceil_mode pooling, stride = window


def _up(src: Size, dst: Size) -> nn.Module:
    return nn.Identity() if src == dst else nn.Upsample(size=dst, mode="nearest")


def _nearest_index(src: int, dst: int) -> torch.Tensor:
    """The source row of each destination row under torch's nearest upsampling from ``src`` to ``dst`` rows."""
    rows = torch.arange(src, dtype=torch.float32).view(1, 1, src, 1)
    return F.interpolate(rows, size=(dst, 1), mode="nearest").view(-1).long()


def _composes(src: Size, mid: Size, dst: Size) -> bool:
    """Whether upsampling ``src`` → ``mid`` → ``dst`` gathers exactly the pixels ``src`` → ``dst`` does, on both axes."""
    return all(
        torch.equal(_nearest_index(s, m)[_nearest_index(m, d)], _nearest_index(s, d))
        for s, m, d in zip(src, mid, dst)
    )


@torch.no_grad()
def rewrite_attention_condenser(block: nn.Module) -> CondensedAttention:
    """The exact inference form of an ``AttentionCondenser`` (``x * sigmoid(A(x)) * S``)."""
    attention, _, full = _split(block.attention)
    return CondensedAttention(attention, block.scale, nn.Identity() if full is None else nn.Upsample(size=full, mode="nearest"))


@torch.no_grad()
def rewrite_dcac(block: nn.Module) -> CondensedDCAC:
    """The exact inference form of a ``DoubleCondensingAttentionCondenser``: product where the branches meet, scale folded."""
    feature, f_size, f_full = _split(block.feature)
    attention, a_size, a_full = _split(block.attention)
    bn = feature[-1].bn  # the projection's batch norm (no activation follows it): S·BN(y) is BN with γS, βS
    bn.weight.mul_(block.scale.view(-1))
    bn.bias.mul_(block.scale.view(-1))
    full = f_full or a_full
    if full is None:  # neither branch is condensed: both at full resolution already
        return CondensedDCAC(feature, attention, nn.Identity(), nn.Identity(), nn.Identity(), block.residual, None)
    f_size, a_size = f_size or full, a_size or full
    meet = full
    for finer, coarser in ((f_size, a_size), (a_size, f_size)):
        if finer[0] >= coarser[0] and finer[1] >= coarser[1] and _composes(coarser, finer, full):
            meet = finer
            break
    return CondensedDCAC(feature, attention, _up(f_size, meet), _up(a_size, meet), _up(meet, full), block.residual, None if meet == full else meet)


REWRITES: dict[type[nn.Module], Callable[[nn.Module], nn.Module]] = {
    AttentionCondenser: rewrite_attention_condenser,
    DoubleCondensingAttentionCondenser: rewrite_dcac,
}
"""Block type → its inference rewrite; ``inference_form`` applies these like a ``reparameterize()`` method.

Kept out of the block classes so that the standalone PyTorch export, which copies the blocks'
source, stays free of inference-only code."""
