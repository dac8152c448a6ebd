"""PyTorch building blocks: conv-BN-activation, blur-pool, attention condensers.

Our reading of the papers (see docs/blocks.md):

* attention condenser (TinySpeech/AttendNets): ``V' = V * sigmoid(X(E(C(V)))) * S``;
* double-condensing attention condenser (AttendNeXt): both the feature branch
  and the attention branch are condensed, ``F(V) * sigmoid(A(V)) * S (+ V)``;
* blur-pool (Zhang 2019): a fixed binomial low-pass filter, then subsampling;

and the reference architectures' blocks (see docs/references.md):

* squeeze-and-excitation as in MobileNetV3 (Howard 2019): reduce, ReLU, expand, hard-sigmoid gate;
* MobileOne's train-time block (Vasu 2023), which re-parameterises into one convolution;
* MobileViT's global representation (Mehta 2022): unfold into patches, transformer layers, fold.
"""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_weights

_ACTIVATIONS = {
    "none": nn.Identity,
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hswish": nn.Hardswish,
    "silu": nn.SiLU,
    "gelu": nn.GELU,
}


_GATES = {"sigmoid": nn.Sigmoid, "hsigmoid": nn.Hardsigmoid}


def activation(name: str) -> nn.Module:
    return _ACTIVATIONS[name]()


def make_divisible(value: float, divisor: int) -> int:
    """``value`` rounded to a multiple of ``divisor``, never below 90% of it (the MobileNet rounding)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


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
            # ceil_mode only where a size does not divide: the same output either way, but onnxruntime's
            # pooling with ceil_mode takes a slow path (19 % of the seed's time in its profile)
            self.condense = pool_cls(condense, condense, ceil_mode=any(side % condense for side in size))
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


class SqueezeExcitation(nn.Module):
    """Channel gate ``x * gate(expand(act(reduce(avgpool(x)))))``; both 1×1 convolutions have biases (MobileNetV3)."""

    def __init__(self, channels: int, squeeze: int, act: str = "relu", gate: str = "hsigmoid"):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = activation(act)
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = _GATES[gate]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


def _fold_bn(weight: torch.Tensor, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernel and bias of ``bn(conv(x))`` (a convolution without bias) as one convolution, from BN's running statistics."""
    return fuse_conv_bn_weights(weight, None, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)


class MobileOneBlock(nn.Module):
    """MobileOne's train-time block: ``act(sum of k×k conv-BN branches + 1×1 conv-BN + BN(x))``.

    The 1×1 branch exists for k > 1, the identity BN when input and output shapes agree.
    Every branch is linear, so the sum is one k×k convolution with a bias:
    :meth:`reparameterize` returns it for inference.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, groups: int = 1, branches: int = 1, act: str = "relu"):
        super().__init__()
        self.groups, self.act_name = groups or in_ch, act
        self.convs = nn.ModuleList(ConvBNAct(in_ch, out_ch, kernel, stride, self.groups, "none") for _ in range(branches))
        self.scale_conv = ConvBNAct(in_ch, out_ch, 1, stride, self.groups, "none") if kernel > 1 else None
        self.identity = nn.BatchNorm2d(in_ch) if in_ch == out_ch and stride == 1 else None
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.convs[0](x)
        for branch in self.convs[1:]:
            out = out + branch(x)
        if self.scale_conv is not None:
            out = out + self.scale_conv(x)
        if self.identity is not None:
            out = out + self.identity(x)
        return self.act(out)

    @torch.no_grad()
    def reparameterize(self) -> ConvBNAct:
        """One k×k convolution with a bias, then the activation: the same function in eval mode (BN statistics folded)."""
        conv = self.convs[0].conv
        k, pad = conv.kernel_size[0], conv.kernel_size[0] // 2
        folded = [_fold_bn(branch.conv.weight, branch.bn) for branch in self.convs]
        if self.scale_conv is not None:
            weight, bias = _fold_bn(self.scale_conv.conv.weight, self.scale_conv.bn)
            folded.append((F.pad(weight, (pad,) * 4), bias))
        if self.identity is not None:
            per_group = conv.in_channels // self.groups
            eye = torch.zeros_like(conv.weight)
            channels = torch.arange(conv.out_channels)
            eye[channels, channels % per_group, pad, pad] = 1.0
            folded.append(_fold_bn(eye, self.identity))
        fused = ConvBNAct(conv.in_channels, conv.out_channels, k, conv.stride[0], self.groups, self.act_name, bn=False)
        fused = fused.to(dtype=conv.weight.dtype, device=conv.weight.device)  # the block's own precision and device
        fused.conv.weight.copy_(sum(w for w, _ in folded))
        fused.conv.bias.copy_(sum(b for _, b in folded))
        return fused


class MultiHeadSelfAttention(nn.Module):
    """Self-attention over B×P×N×C tokens (P sequences of N): ``proj(softmax(q kᵀ / √d_head) v)``, heads concatenated.

    Written with two ``matmul`` calls (not ``scaled_dot_product_attention``) so that the MAC
    counter sees, and counts, both products.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # B, P, N, 3C -> 3 x (B, P, heads, N, C / heads)
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, -1)).permute(3, 0, 1, 4, 2, 5).unbind(0)
        weights = torch.softmax(torch.matmul(q * self.scale, k.transpose(-2, -1)), dim=-1)
        return self.proj(torch.matmul(weights, v).transpose(-3, -2).flatten(-2))


class EncoderLayer(nn.Module):
    """A pre-norm transformer encoder layer: ``x + attention(LN(x))``, then ``x + MLP(LN(x))``."""

    def __init__(self, dim: int, heads: int, hidden: int, act: str = "silu"):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = MultiHeadSelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), activation(act), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def mlp_width(channels: int, ratio: float) -> int:
    """The hidden width of a transformer layer's MLP: ``channels * ratio``, at least 1."""
    return max(1, int(channels * ratio))


def transformer_grid(size: tuple[int, int], patch: int) -> tuple[int, int]:
    """Patches per column and row: a map that ``patch`` does not divide is resized up to the next multiple."""
    return math.ceil(size[0] / patch), math.ceil(size[1] / patch)


class PatchTransformer(nn.Module):
    """MobileViT's global representation on a C×H×W map (``size`` = H, W).

    Unfold: the map is cut into ``patch``×``patch`` patches; the pixels at one position inside
    every patch form one sequence of N = H·W / patch² tokens (P = patch² sequences). Each
    encoder layer attends across the patches of a sequence; a final LayerNorm, then fold puts
    every token back where it came from. A map that ``patch`` does not divide is resized
    bilinearly to the next multiple and back, as in ml-cvnets.
    """

    def __init__(self, channels: int, size: tuple[int, int], patch: int = 2, depth: int = 1, heads: int = 4, mlp_ratio: float = 2.0, act: str = "silu"):
        super().__init__()
        self.channels, self.size, self.patch = channels, size, patch
        self.grid = transformer_grid(size, patch)
        self.layers = nn.Sequential(*(EncoderLayer(channels, heads, mlp_width(channels, mlp_ratio), act) for _ in range(depth)))
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (gh, gw), p, c = self.grid, self.patch, self.channels
        padded = (gh * p, gw * p)
        if padded != self.size:
            x = F.interpolate(x, size=padded, mode="bilinear", align_corners=False)
        # unfold: B, C, gh·p, gw·p -> B, P = p·p, N = gh·gw, C
        tokens = x.reshape(-1, c, gh, p, gw, p).permute(0, 3, 5, 2, 4, 1).reshape(-1, p * p, gh * gw, c)
        tokens = self.norm(self.layers(tokens))
        # fold: the inverse permutation
        x = tokens.reshape(-1, p, p, gh, gw, c).permute(0, 5, 3, 1, 4, 2).reshape(-1, c, *padded)
        if padded != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False)
        return x
