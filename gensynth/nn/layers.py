"""One module factory per graph operation (the table the builder reads)."""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ..ir.ops import Shape
from .blocks import Add, AttentionCondenser, BlurPool2d, Classifier, Concat, ConvBNAct, DoubleCondensingAttentionCondenser

Factory = Callable[[dict[str, Any], list[Shape], Shape], nn.Module]


def _conv(a: dict[str, Any], ins: list[Shape], out: Shape) -> nn.Module:
    return ConvBNAct(ins[0][0], a["out_channels"], a["kernel"], a["stride"], a["groups"], a["act"], a["bn"])


def _branch(a: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k: a[prefix + k] for k in ("condense", "pool", "ratio", "kernel", "groups")}


def _dcac(a: dict[str, Any], ins: list[Shape], out: Shape) -> nn.Module:
    return DoubleCondensingAttentionCondenser(ins[0][0], out[0], out[1:], _branch(a, "f_"), _branch(a, "a_"), a["act"], a["residual"])


def _condenser(a: dict[str, Any], ins: list[Shape], out: Shape) -> nn.Module:
    return AttentionCondenser(out[0], out[1:], act=a["act"], **_branch(a, ""))


def _pool(cls: type[nn.Module]) -> Factory:
    def make(a: dict[str, Any], ins: list[Shape], out: Shape) -> nn.Module:
        return cls(a["kernel"], a["stride"], a["padding"], ceil_mode=True)
    return make


MODULES: dict[str, Factory] = {
    **{op: _conv for op in ("stem", "conv", "dwconv", "pwconv", "gconv")},
    "dcac": _dcac,
    "attention_condenser": _condenser,
    "blurpool": lambda a, ins, out: BlurPool2d(ins[0][0], a["filter_size"], a["stride"]),
    "avgpool": _pool(nn.AvgPool2d),
    "maxpool": _pool(nn.MaxPool2d),
    "concat": lambda a, ins, out: Concat(),
    "add": lambda a, ins, out: Add(a["act"]),
    "global_pool": lambda a, ins, out: nn.AdaptiveAvgPool2d(1),
    "classifier": lambda a, ins, out: Classifier(ins[0][0], out[0], a["dropout"]),
}


def register_module(op: str, factory: Factory) -> None:
    """Say how to build a user-registered operation."""
    MODULES[op] = factory
