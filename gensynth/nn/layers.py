"""The torch half of the built-in ops: each one's module factory beside the MAC rule that mirrors it.

:mod:`gensynth.ir.ops` declares the built-ins without torch; importing this
module attaches their factories and MAC rules to the same registry entries, so
the builder and :func:`gensynth.cost.graph_macs` read one table. A MAC rule
counts what fvcore counts on the module (convolutions and linear layers,
``tests/test_cost_analytic.py`` checks the two agree); ops without
multiply-accumulates keep the ``no_macs`` they are declared with.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from torch import nn

from ..ir.ops import CONV_OPS, OPS, MacRule, ModuleFactory, Shape, register_op, spatial_out
from .blocks import (
    Add,
    AttentionCondenser,
    BlurPool2d,
    Classifier,
    Concat,
    ConvBNAct,
    DoubleCondensingAttentionCondenser,
    MobileOneBlock,
    PatchTransformer,
    SqueezeExcitation,
    embed_channels,
    make_divisible,
    mlp_width,
    transformer_grid,
)


def _attach(op: str, module: ModuleFactory, macs: MacRule | None = None) -> None:
    """Complete built-in ``op`` with its module factory and, if it has multiply-accumulates, its MAC rule."""
    spec = OPS[op]
    register_op(replace(spec, module=module, macs=macs or spec.macs), override=True)


def _conv(a: dict[str, Any], ins: list[Shape], out: Shape) -> nn.Module:
    return ConvBNAct(ins[0][0], a["out_channels"], a["kernel"], a["stride"], a["groups"], a["act"], a["bn"])


def _conv_macs(a: dict[str, Any], ins: list[Shape], out: Shape) -> int:
    groups = a["groups"] or ins[0][0]
    return out[0] * out[1] * out[2] * (ins[0][0] // groups) * a["kernel"] ** 2


def _branch(a: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k: a[prefix + k] for k in ("condense", "pool", "ratio", "kernel", "groups")}


def _branch_macs(channels: int, out_channels: int, h: int, w: int, condense: int, ratio: float, kernel: int, groups: int, **_: Any) -> int:
    """Condense → 1×1 reduce → grouped k×k embed → 1×1 project, all at the condensed resolution."""
    if condense > 1:
        h, w = spatial_out(h, condense, condense, 0, ceil=True), spatial_out(w, condense, condense, 0, ceil=True)
    mid = embed_channels(channels, ratio, groups)
    per_pixel = channels * mid + mid * (mid // (groups or mid)) * kernel**2 + mid * out_channels
    return h * w * per_pixel


def _dcac(a: dict[str, Any], ins: list[Shape], out: Shape) -> nn.Module:
    return DoubleCondensingAttentionCondenser(ins[0][0], out[0], out[1:], _branch(a, "f_"), _branch(a, "a_"), a["act"], a["residual"])


def _dcac_macs(a: dict[str, Any], ins: list[Shape], out: Shape) -> int:
    c, h, w = ins[0]
    return sum(_branch_macs(c, out[0], h, w, **_branch(a, p)) for p in ("f_", "a_"))


def _condenser(a: dict[str, Any], ins: list[Shape], out: Shape) -> nn.Module:
    return AttentionCondenser(out[0], out[1:], act=a["act"], **_branch(a, ""))


def _condenser_macs(a: dict[str, Any], ins: list[Shape], out: Shape) -> int:
    c, h, w = ins[0]
    return _branch_macs(c, c, h, w, **_branch(a, ""))


def _squeeze(a: dict[str, Any], channels: int) -> int:
    return make_divisible(channels / a["reduction"], a["divisor"])


def _se(a: dict[str, Any], ins: list[Shape], out: Shape) -> nn.Module:
    return SqueezeExcitation(ins[0][0], _squeeze(a, ins[0][0]), a["act"], a["gate"])


def _se_macs(a: dict[str, Any], ins: list[Shape], out: Shape) -> int:
    """Two 1×1 convolutions on the pooled 1×1 map."""
    return 2 * ins[0][0] * _squeeze(a, ins[0][0])


def _mobileone(a: dict[str, Any], ins: list[Shape], out: Shape) -> nn.Module:
    return MobileOneBlock(ins[0][0], a["out_channels"], a["kernel"], a["stride"], a["groups"], a["branches"], a["act"])


def _mobileone_macs(a: dict[str, Any], ins: list[Shape], out: Shape) -> int:
    """The train-time form: ``branches`` k×k convolutions, plus the 1×1 scale branch when k > 1."""
    taps = a["branches"] * a["kernel"] ** 2 + (a["kernel"] > 1)
    return _conv_macs(a, ins, out) // a["kernel"] ** 2 * taps


def _transformer(a: dict[str, Any], ins: list[Shape], out: Shape) -> nn.Module:
    return PatchTransformer(out[0], out[1:], a["patch"], a["depth"], a["heads"], a["mlp_ratio"], a["act"])


def transformer_macs(a: dict[str, Any], shape: Shape) -> tuple[int, int]:
    """The ``transformer`` op's MACs on a C×H×W input, as (linear layers, attention products).

    Per layer, for T tokens of width C in sequences of N: the linears are QKV (3C²), the output
    projection (C²) and the MLP (2C·hidden) per token; the products are q·kᵀ and weights·v,
    N·C per token each. A published figure may leave the products out (docs/references.md).
    """
    c, h, w = shape
    rows, cols = transformer_grid((h, w), a["patch"])
    n = rows * cols
    tokens = n * a["patch"] ** 2
    return a["depth"] * tokens * (4 * c * c + 2 * c * mlp_width(c, a["mlp_ratio"])), a["depth"] * tokens * 2 * n * c


def _pool(cls: type[nn.Module]) -> ModuleFactory:
    def make(a: dict[str, Any], ins: list[Shape], out: Shape) -> nn.Module:
        return cls(a["kernel"], a["stride"], a["padding"], ceil_mode=True)
    return make


for _op in CONV_OPS:
    _attach(_op, _conv, _conv_macs)
_attach("mobileone_block", _mobileone, _mobileone_macs)
_attach("squeeze_excitation", _se, _se_macs)
_attach("transformer", _transformer, lambda a, ins, out: sum(transformer_macs(a, ins[0])))
_attach("dcac", _dcac, _dcac_macs)
_attach("attention_condenser", _condenser, _condenser_macs)
_attach(
    "blurpool",
    lambda a, ins, out: BlurPool2d(ins[0][0], a["filter_size"], a["stride"]),
    lambda a, ins, out: out[0] * out[1] * out[2] * a["filter_size"] ** 2,
)
_attach("avgpool", _pool(nn.AvgPool2d))
_attach("maxpool", _pool(nn.MaxPool2d))
_attach("concat", lambda a, ins, out: Concat())
_attach("add", lambda a, ins, out: Add(a["act"]))
_attach("global_pool", lambda a, ins, out: nn.AdaptiveAvgPool2d(1))
_attach("classifier", lambda a, ins, out: Classifier(ins[0][0], out[0], a["dropout"]), lambda a, ins, out: ins[0][0] * out[0])
