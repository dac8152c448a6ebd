"""PyTorch building blocks: conv-BN-activation, blur-pool, attention condensers.

Our reading of the papers (see docs/blocks.md):

* attention condenser (TinySpeech/AttendNets): ``V' = V * sigmoid(X(E(C(V)))) * S``;
* double-condensing attention condenser (AttendNeXt): both the feature branch
  and the attention branch are condensed, ``F(V) * sigmoid(A(V)) * S (+ V)``;
* blur-pool (Zhang 2019): a fixed binomial low-pass filter, then subsampling.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

_ACTIVATIONS = {
    "none": nn.Identity,
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hswish": nn.Hardswish,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
}


def activation(name: str) -> nn.Module:
    return _ACTIVATIONS[name]()


def embed_channels(channels: int, ratio: float, groups: int) -> int:
    """Embedding width: ``channels * ratio`` rounded up to a multiple of 8 (and of ``groups``)."""
    width = max(8, math.ceil(channels * ratio / 8) * 8)
    if groups > 1:
        width = math.ceil(width / groups) * groups
    return width


class ConvBNAct(nn.Sequential):
    """Convolution (padding k//2), optional batch norm, activation."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1, act: str = "relu", bn: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups or in_ch, bias=not bn)
        if bn:
            self.bn = nn.BatchNorm2d(out_ch)
        if act != "none":
            self.act = activation(act)


class BlurPool2d(nn.Module):
    """Anti-aliased downsampling: a binomial blur of ``filter_size`` taps, then stride (Zhang 2019)."""

    def __init__(self, channels: int, filter_size: int = 3, stride: int = 2):
        super().__init__()
        taps = torch.tensor([math.comb(filter_size - 1, i) for i in range(filter_size)], dtype=torch.float32)
        kernel = torch.outer(taps, taps)
        kernel = kernel / kernel.sum()
        self.register_buffer("filt", kernel.expand(channels, 1, filter_size, filter_size).clone())
        self.stride, self.pad, self.channels = stride, filter_size // 2, channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, mode="replicate")
        return F.conv2d(x, self.filt, stride=self.stride, groups=self.channels)


class CondensedBranch(nn.Module):
    """Condense (pool by ``condense``), embed (1×1 then grouped k×k), expand (1×1, upsample)."""

    def __init__(self, in_ch: int, out_ch: int, size: tuple[int, int], condense: int, pool: str, ratio: float, kernel: int, groups: int, act: str):
        super().__init__()
        mid = embed_channels(in_ch, ratio, groups)
        if condense > 1:
            pool_cls = nn.MaxPool2d if pool == "max" else nn.AvgPool2d
            self.condense = pool_cls(condense, condense, ceil_mode=True)
        self.reduce = ConvBNAct(in_ch, mid, 1, act=act)
        self.embed = ConvBNAct(mid, mid, kernel, groups=groups or mid, act=act)
        self.project = ConvBNAct(mid, out_ch, 1, act="none")
        if condense > 1:
            self.expand = nn.Upsample(size=size, mode="nearest")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.children():
            x = layer(x)
        return x


class AttentionCondenser(nn.Module):
    """Visual attention condenser: ``V * sigmoid(A(V)) * S`` with a condensed attention branch A."""

    def __init__(self, channels: int, size: tuple[int, int], condense: int = 2, pool: str = "max", ratio: float = 0.25, kernel: int = 3, groups: int = 1, act: str = "relu"):
        super().__init__()
        self.attention = CondensedBranch(channels, channels, size, condense, pool, ratio, kernel, groups, act)
        self.scale = nn.Parameter(torch.ones(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.attention(x)) * self.scale


class DoubleCondensingAttentionCondenser(nn.Module):
    """DC-AC: ``F(V) * sigmoid(A(V)) * S``, both branches condensed; ``+ V`` when shapes allow."""

    def __init__(self, in_ch: int, out_ch: int, size: tuple[int, int], feature: dict, attention: dict, act: str = "relu", residual: bool = True):
        super().__init__()
        self.feature = CondensedBranch(in_ch, out_ch, size, act=act, **feature)
        self.attention = CondensedBranch(in_ch, out_ch, size, act=act, **attention)
        self.scale = nn.Parameter(torch.ones(1, out_ch, 1, 1))
        self.residual = residual and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.feature(x) * torch.sigmoid(self.attention(x)) * self.scale
        return out + x if self.residual else out


class Concat(nn.Module):
    """Concatenate inputs along channels."""

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=1)


class Add(nn.Module):
    """Sum inputs, then an optional activation."""

    def __init__(self, act: str = "none"):
        super().__init__()
        self.act = activation(act)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return self.act(out)


class Classifier(nn.Sequential):
    """Flatten, dropout, linear."""

    def __init__(self, in_ch: int, num_classes: int, dropout: float = 0.0):
        super().__init__(nn.Flatten(1), nn.Dropout(dropout), nn.Linear(in_ch, num_classes))
