"""The operation types of the architecture graph: attributes, arity, shape rule, module factory, MAC rule.

Each operation is one :class:`OpSpec` in the :data:`OPS` registry; a single
:func:`register_op` call declares all of it, so shape inference, the builder
(:mod:`gensynth.nn.builder`) and the MAC count (:func:`gensynth.cost.graph_macs`)
read the same entry::

    register_op(OpSpec(
        "squeeze_excite", "Squeeze-and-excite channel gate.", {"reduction": Attr(int, 4, minimum=1)},
        infer=lambda attrs, ins, ctx: ins[0],
        module=lambda attrs, ins, out: SqueezeExcite(ins[0][0], ins[0][0] // attrs["reduction"]),
        macs=lambda attrs, ins, out: 2 * ins[0][0] * (ins[0][0] // attrs["reduction"]),
    ))

A shape is ``(channels, height, width)``; the classifier's is ``(num_classes,)``.
This module must not import torch (the IR is torch-free), so the built-ins are
declared here without their module factories and MAC rules, which
:mod:`gensynth.nn.layers` attaches beside the blocks they mirror.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ..errors import UserError
from ..registry import Registry

if TYPE_CHECKING:
    from torch import nn

Shape = tuple[int, ...]
REQUIRED = object()


class OpError(ValueError):
    """An operation's attributes or inputs are not what it expects."""


class ChannelMismatch(OpError):
    """A node declares ``in_channels`` that its input does not produce."""

    def __init__(self, declared: int, actual: int):
        super().__init__(f"in_channels {declared}, but its input has {actual} channels")
        self.declared, self.actual = declared, actual


@dataclass(frozen=True)
class Attr:
    """One attribute of an operation: its type, default and allowed values."""

    type: type
    default: Any = REQUIRED
    choices: tuple[Any, ...] | None = None
    minimum: int | float | None = None
    maximum: int | float | None = None


MAX_GROUPS = 4096
"""Groups (and the embedding width they round up to) beyond this are a mistake, not a design."""

ModuleFactory = Callable[[dict[str, Any], list[Shape], Shape], "nn.Module"]
"""``(attrs, input shapes, output shape) -> torch module`` computing the op."""
MacRule = Callable[[dict[str, Any], list[Shape], Shape], int]
"""``(attrs, input shapes, output shape) -> multiply-accumulates``, equal to fvcore's count of the module."""


def no_macs(attrs: dict[str, Any], ins: list[Shape], out: Shape) -> int:
    """The MAC rule of an op without multiply-accumulates (pools, merges, the input).

    Declared explicitly so that a forgotten rule is an error in
    :func:`gensynth.cost.graph_macs`, not a silent zero.
    """
    return 0


@dataclass(frozen=True)
class OpSpec:
    """An operation type: attributes, number of inputs, shape rule, module factory and MAC rule.

    ``module`` and ``macs`` may stay ``None`` for an op only ever validated or
    drawn; building it, or counting its MACs, then raises naming the node.
    """

    name: str
    doc: str
    attrs: dict[str, Attr]
    infer: Callable[[dict[str, Any], list[Shape], "GraphContext"], Shape]
    arity: tuple[int, int | None] = (1, 1)
    low_pass: bool = False
    tags: frozenset[str] = field(default_factory=frozenset)
    module: ModuleFactory | None = None
    macs: MacRule | None = None


@dataclass(frozen=True)
class GraphContext:
    """Graph-level facts that shape rules need."""

    input_shape: Shape
    num_classes: int


OPS: Registry[OpSpec] = Registry("op")
"""Every operation type by name: the one table shape inference, the builder and the MAC count read."""


def register_op(spec: OpSpec, override: bool = False) -> OpSpec:
    """Register ``spec`` under ``spec.name``; a name already taken raises ``ValueError`` unless ``override``.

    Its origin (``OPS.origin(name)``) is the module of its shape rule: where the op was written.
    """
    return OPS.register(spec.name, spec, override, origin=f"python {spec.infer.__module__}")


def list_ops(pattern: str = "*") -> list[str]:
    """Registered op names matching the shell-style ``pattern`` (``"*conv"``), sorted."""
    return OPS.names(pattern)


def spatial_out(size: int, kernel: int, stride: int, padding: int, ceil: bool = False) -> int:
    """Output length of a sliding window (PyTorch's convention)."""
    span = size + 2 * padding - kernel
    steps = math.ceil(span / stride) if ceil else span // stride
    out = steps + 1
    if ceil and (out - 1) * stride >= size + padding:
        out -= 1
    if out < 1:
        raise OpError(f"a {kernel}x{kernel} window with stride {stride} does not fit a {size}px input")
    return out


def _check_in_channels(attrs: dict[str, Any], shape: Shape) -> None:
    declared = attrs.get("in_channels")
    if declared is not None and declared != shape[0]:
        raise ChannelMismatch(declared, shape[0])


def _conv_infer(attrs: dict[str, Any], ins: list[Shape], ctx: GraphContext) -> Shape:
    (c, h, w) = _spatial_input(ins[0])
    _check_in_channels(attrs, ins[0])
    groups = attrs["groups"]
    if groups == 0:  # depthwise: one group per input channel
        groups = c
    out = attrs["out_channels"]
    if c % groups or out % groups:
        raise OpError(f"groups {groups} must divide in_channels {c} and out_channels {out}")
    k, s = attrs["kernel"], attrs["stride"]
    return (out, spatial_out(h, k, s, k // 2), spatial_out(w, k, s, k // 2))


def _spatial_input(shape: Shape) -> Shape:
    if len(shape) != 3:
        raise OpError(f"expects a C×H×W input, got shape {shape}")
    return shape


def _same_channels_infer(attrs: dict[str, Any], ins: list[Shape], ctx: GraphContext) -> Shape:
    shape = _spatial_input(ins[0])
    _check_in_channels(attrs, shape)
    return shape


def _pool_infer(attrs: dict[str, Any], ins: list[Shape], ctx: GraphContext) -> Shape:
    c, h, w = _spatial_input(ins[0])
    k, s = attrs["kernel"], attrs["stride"]
    pad = attrs.get("padding", 0)
    if pad > k // 2:
        raise OpError(f"padding {pad} must be at most half the kernel ({k} // 2 = {k // 2})")
    return (c, spatial_out(h, k, s, pad, ceil=True), spatial_out(w, k, s, pad, ceil=True))


def _blurpool_infer(attrs: dict[str, Any], ins: list[Shape], ctx: GraphContext) -> Shape:
    c, h, w = _spatial_input(ins[0])
    k, s = attrs["filter_size"], attrs["stride"]
    return (c, spatial_out(h, k, s, k // 2), spatial_out(w, k, s, k // 2))


def _block_infer(attrs: dict[str, Any], ins: list[Shape], ctx: GraphContext) -> Shape:
    c, h, w = _spatial_input(ins[0])
    _check_in_channels(attrs, ins[0])
    return (attrs.get("out_channels") or c, h, w)


def _input_infer(attrs: dict[str, Any], ins: list[Shape], ctx: GraphContext) -> Shape:
    return ctx.input_shape


def _concat_infer(attrs: dict[str, Any], ins: list[Shape], ctx: GraphContext) -> Shape:
    first = _spatial_input(ins[0])
    for i, shape in enumerate(ins[1:], start=2):
        if _spatial_input(shape)[1:] != first[1:]:
            raise OpError(f"input {i} is {shape[1]}x{shape[2]} px, but input 1 is {first[1]}x{first[2]} px")
    return (sum(s[0] for s in ins), first[1], first[2])


def _add_infer(attrs: dict[str, Any], ins: list[Shape], ctx: GraphContext) -> Shape:
    first = ins[0]
    for i, shape in enumerate(ins[1:], start=2):
        if shape != first:
            raise OpError(f"input {i} has shape {list(shape)}, but input 1 has {list(first)}")
    return first


def _transformer_infer(attrs: dict[str, Any], ins: list[Shape], ctx: GraphContext) -> Shape:
    shape = _same_channels_infer(attrs, ins, ctx)
    if shape[0] % attrs["heads"]:
        raise OpError(f"heads {attrs['heads']} must divide the {shape[0]} channels")
    return shape


def _global_pool_infer(attrs: dict[str, Any], ins: list[Shape], ctx: GraphContext) -> Shape:
    return (_spatial_input(ins[0])[0], 1, 1)


def _classifier_infer(attrs: dict[str, Any], ins: list[Shape], ctx: GraphContext) -> Shape:
    c, h, w = _spatial_input(ins[0])
    if (h, w) != (1, 1):
        raise OpError(f"expects a globally pooled C×1×1 input, got {h}x{w} px")
    _check_in_channels(attrs, ins[0])
    return (ctx.num_classes,)


ACTIVATIONS = ("none", "relu", "relu6", "hswish", "silu", "gelu")
POOLS = ("max", "avg")
GATES = ("sigmoid", "hsigmoid")

_CONV_ATTRS = {
    "out_channels": Attr(int, minimum=1),
    "kernel": Attr(int, 3, minimum=1),
    "stride": Attr(int, 1, minimum=1),
    "groups": Attr(int, 1, minimum=0, maximum=MAX_GROUPS),
    "act": Attr(str, "relu", ACTIVATIONS),
    "bn": Attr(bool, True),
    "in_channels": Attr(int, None, minimum=1),
}

_BRANCH_ATTRS = {
    "condense": Attr(int, 2, minimum=1),
    "pool": Attr(str, "max", POOLS),
    "ratio": Attr(float, 0.25, minimum=0.01),
    "kernel": Attr(int, 3, (1, 3, 5, 7)),
    "groups": Attr(int, 1, minimum=0, maximum=MAX_GROUPS),
}

CONV_OPS = ("stem", "conv", "dwconv", "pwconv", "gconv")


def _conv_spec(name: str, doc: str, **overrides: Attr) -> OpSpec:
    return OpSpec(name, doc, {**_CONV_ATTRS, **overrides}, _conv_infer, tags=frozenset({"conv"}))


for _spec in (
    OpSpec("input", "The network's input image.", {}, _input_infer, arity=(0, 0), macs=no_macs),
    _conv_spec("stem", "The first k×k convolution on the image."),
    _conv_spec("conv", "A dense k×k convolution (+BN, activation)."),
    _conv_spec("dwconv", "A depthwise k×k convolution: one group per channel.", groups=Attr(int, 0, (0,))),
    _conv_spec("pwconv", "A point-wise (1×1) convolution.", kernel=Attr(int, 1, (1,))),
    _conv_spec("gconv", "A grouped k×k convolution.", groups=Attr(int, 2, minimum=2, maximum=MAX_GROUPS)),
    OpSpec(
        "attention_condenser",
        "Visual attention condenser (AttendNets): V * sigmoid(X(E(C(V)))) * S.",
        {**{k: v for k, v in _BRANCH_ATTRS.items()}, "act": Attr(str, "relu", ACTIVATIONS), "in_channels": Attr(int, None, minimum=1)},
        _same_channels_infer,
        tags=frozenset({"attention"}),
    ),
    OpSpec(
        "dcac",
        "Double-condensing attention condenser (AttendNeXt): F(V) * sigmoid(A(V)) * S (+V).",
        {
            **{f"f_{k}": v for k, v in _BRANCH_ATTRS.items()},
            **{f"a_{k}": v for k, v in _BRANCH_ATTRS.items()},
            "out_channels": Attr(int, None, minimum=1),
            "act": Attr(str, "relu", ACTIVATIONS),
            "residual": Attr(bool, True),
            "in_channels": Attr(int, None, minimum=1),
        },
        _block_infer,
        tags=frozenset({"attention"}),
    ),
    OpSpec(
        "blurpool",
        "Anti-aliased downsampling (Zhang 2019): binomial blur, then subsample by stride.",
        {"stride": Attr(int, 2, minimum=1), "filter_size": Attr(int, 3, (1, 3, 5, 7))},
        _blurpool_infer,
        low_pass=True,
    ),
    OpSpec(
        "avgpool",
        "Average pooling (a box low-pass filter, then subsampling).",
        {"kernel": Attr(int, 2, minimum=1), "stride": Attr(int, 2, minimum=1), "padding": Attr(int, 0, minimum=0)},
        _pool_infer,
        low_pass=True,
        macs=no_macs,
    ),
    OpSpec(
        "maxpool",
        "Max pooling (not a low-pass filter: aliases when strided).",
        {"kernel": Attr(int, 2, minimum=1), "stride": Attr(int, 2, minimum=1), "padding": Attr(int, 0, minimum=0)},
        _pool_infer,
        macs=no_macs,
    ),
    OpSpec(
        "squeeze_excitation",
        "Squeeze-and-excitation channel gate (MobileNetV3): x * gate(W2 act(W1 avgpool(x))), "
        "W1 to C / reduction channels rounded to a multiple of divisor.",
        {
            "reduction": Attr(float, 4.0, minimum=1.0, maximum=1024.0),
            "divisor": Attr(int, 8, minimum=1, maximum=MAX_GROUPS),
            "act": Attr(str, "relu", ACTIVATIONS),
            "gate": Attr(str, "hsigmoid", GATES),
            "in_channels": Attr(int, None, minimum=1),
        },
        _same_channels_infer,
        tags=frozenset({"attention"}),
    ),
    OpSpec(
        "mobileone_block",
        "MobileOne's train-time block (Vasu 2023): `branches` k×k conv-BN branches + a 1×1 conv-BN branch "
        "(k > 1) + an identity BN (same shape), summed, activation; re-parameterises to one k×k conv.",
        {
            **{k: v for k, v in _CONV_ATTRS.items() if k != "bn"},  # every branch has its BN
            "kernel": Attr(int, 3, (1, 3, 5, 7)),
            "branches": Attr(int, 1, minimum=1, maximum=16),
        },
        _conv_infer,
        tags=frozenset({"conv"}),
    ),
    OpSpec(
        "transformer",
        "MobileViT's global representation (Mehta 2022): unfold into patch×patch patches, `depth` pre-norm "
        "encoder layers (multi-head self-attention across patches, MLP), LayerNorm, fold back.",
        {
            "patch": Attr(int, 2, minimum=1, maximum=64),
            "depth": Attr(int, 1, minimum=1, maximum=64),
            "heads": Attr(int, 4, minimum=1, maximum=MAX_GROUPS),
            "mlp_ratio": Attr(float, 2.0, minimum=0.01, maximum=64.0),
            "act": Attr(str, "silu", ACTIVATIONS),
            "in_channels": Attr(int, None, minimum=1),
        },
        _transformer_infer,
        tags=frozenset({"attention"}),
    ),
    OpSpec("concat", "Channel concatenation, inputs in port order.", {}, _concat_infer, arity=(2, None), macs=no_macs),
    OpSpec(
        "add", "Element-wise sum of same-shaped inputs.", {"act": Attr(str, "none", ACTIVATIONS)}, _add_infer, arity=(2, None), macs=no_macs
    ),
    OpSpec("global_pool", "Global average pooling to C×1×1.", {}, _global_pool_infer, low_pass=True, macs=no_macs),
    OpSpec(
        "classifier",
        "Dropout, then a linear layer to the number of classes.",
        {"dropout": Attr(float, 0.0, minimum=0.0, maximum=0.99), "in_channels": Attr(int, None, minimum=1)},
        _classifier_infer,
    ),
):
    register_op(_spec)


def resolve_attrs(op: str, attrs: dict[str, Any]) -> dict[str, Any]:
    """Check ``attrs`` against the operation's schema; return them with defaults filled."""
    try:
        spec = OPS.get(op)
    except UserError as err:  # the graph names the node: an OpError, like every other attribute mistake
        raise OpError(str(err)) from None
    unknown = sorted(set(attrs) - set(spec.attrs))
    if unknown:
        raise OpError(f"unknown attribute '{unknown[0]}' for op '{op}' (expected: {', '.join(sorted(spec.attrs)) or 'none'})")
    resolved: dict[str, Any] = {}
    for key, attr in spec.attrs.items():
        if key not in attrs:
            if attr.default is REQUIRED:
                raise OpError(f"missing attribute '{key}' for op '{op}'")
            resolved[key] = attr.default
            continue
        resolved[key] = _check_value(op, key, attr, attrs[key])
    return resolved


def _check_value(op: str, key: str, attr: Attr, value: Any) -> Any:
    if value is None and attr.default is None:
        return None
    ok = isinstance(value, attr.type) and not (attr.type is int and isinstance(value, bool))
    if attr.type is float and isinstance(value, int) and not isinstance(value, bool):
        value, ok = float(value), True
    if not ok:
        raise OpError(f"attribute '{key}' of op '{op}' must be {attr.type.__name__}, got {type(value).__name__} {value!r}")
    if attr.choices is not None and value not in attr.choices:
        raise OpError(f"attribute '{key}' of op '{op}' must be one of {list(attr.choices)}, got {value!r}")
    if attr.minimum is not None and value < attr.minimum:
        raise OpError(f"attribute '{key}' of op '{op}' must be >= {attr.minimum}, got {value!r}")
    if attr.maximum is not None and value > attr.maximum:
        raise OpError(f"attribute '{key}' of op '{op}' must be <= {attr.maximum}, got {value!r}")
    return value
