"""Multiply-accumulate counting over a JIT trace, with an explicit operator table.

Convention: ``macs`` counts the multiply-accumulates of convolutions, linear layers
(``linear``/``addmm``/``mm``) and matrix products (``matmul``/``bmm``/``einsum``)
only -- the convention of the architecture papers and of
``torch.utils.flop_counter.FlopCounterMode``, whose total is exactly ``2 * macs``
for convolution/linear networks.  Everything else is counted in ``other_ops`` as
element operations: batch norm and activations cost 1 per output element,
element-wise arithmetic 1 per output element, pooling the kernel window per
output element (adaptive pooling and reductions: 1 per input element),
upsampling 1 per output element.  Padding and data movement (cat, view,
reshape, dropout, ...) cost nothing but are registered explicitly.

fvcore silently skips a built-in list of operators; here nothing is skipped
(only ``prim::`` bookkeeping nodes, as always in fvcore), so every ``aten::``
operator either has a handle in ``_HANDLES`` or is reported as unsupported.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from math import prod
from typing import Any

import torch
from torch import nn

with warnings.catch_warnings():  # importing fvcore.nn runs the deprecated torch.jit.script
    warnings.simplefilter("ignore", DeprecationWarning)
    from fvcore.nn.jit_analysis import JitModelAnalysis
    from fvcore.nn.jit_handles import Handle, get_shape

_MACS = "macs"
_OTHER = "other"

CountFn = Callable[[list[Any], list[Any]], int]


class UnsupportedOperatorError(ValueError):
    """Raised when a traced operator has no handle in the cost table."""

    def __init__(self, ops: dict[str, int]) -> None:
        self.ops = ops
        listing = ", ".join(f"{op} x{n}" for op, n in sorted(ops.items()))
        super().__init__(f"operators missing from the cost table: {listing}")


@dataclass
class MacReport:
    """MACs and element operations of one batch-1 forward pass."""

    macs: int
    other_ops: int
    by_module: dict[str, int]
    other_by_module: dict[str, int]
    unsupported: dict[str, int]


def _macs(fn: CountFn) -> Handle:
    return lambda inputs, outputs: Counter({_MACS: fn(inputs, outputs)})


def _other(fn: CountFn) -> Handle:
    return lambda inputs, outputs: Counter({_OTHER: fn(inputs, outputs)})


def _zero(inputs: list[Any], outputs: list[Any]) -> Counter[str]:
    return Counter()


def _numel(value: Any) -> int:
    return prod(get_shape(value))


def _out_numel(inputs: list[Any], outputs: list[Any]) -> int:
    return _numel(outputs[0])


def _in_numel(inputs: list[Any], outputs: list[Any]) -> int:
    return _numel(inputs[0])


def _conv(transposed: Callable[[list[Any]], bool]) -> CountFn:
    """MACs = batch * weight elements * spatial positions (input ones if transposed)."""

    def count(inputs: list[Any], outputs: list[Any]) -> int:
        x, w, out = get_shape(inputs[0]), get_shape(inputs[1]), get_shape(outputs[0])
        spatial = (x if transposed(inputs) else out)[2:]
        return x[0] * prod(w) * prod(spatial)

    return count


def _matmul(left: int) -> CountFn:
    """(Batched, broadcast) matrix product: output elements * inner size of input ``left``."""

    def count(inputs: list[Any], outputs: list[Any]) -> int:
        return _numel(outputs[0]) * get_shape(inputs[left])[-1]

    return count


def _linear(inputs: list[Any], outputs: list[Any]) -> int:
    return _numel(inputs[0]) * get_shape(inputs[1])[0]


def _einsum(inputs: list[Any], outputs: list[Any]) -> int:
    """Pairwise left-to-right contraction: each pair costs the product of its index sizes."""
    equation = inputs[0].toIValue().replace(" ", "")
    lhs, out_letters = equation.split("->")
    terms = lhs.split(",")
    shapes = [get_shape(v) for v in inputs[1].node().inputs()]
    sizes = {c: n for term, shape in zip(terms, shapes) for c, n in zip(term, shape)}
    macs, left = 0, set(terms[0])
    for i, term in enumerate(terms[1:], start=1):
        pair = left | set(term)
        macs += prod(sizes[c] for c in pair)
        needed = set(out_letters).union(*terms[i + 1 :])
        left = pair & needed
    return macs


def _pool(inputs: list[Any], outputs: list[Any]) -> int:
    """Kernel-window size per output element."""
    kernel = [v.toIValue() for v in inputs[1].node().inputs()]
    return _numel(outputs[0]) * prod(kernel)


_MAC_OPS: dict[str, CountFn] = {
    "aten::_convolution": _conv(lambda inputs: bool(inputs[6].toIValue())),
    "aten::_convolution_mode": _conv(lambda inputs: False),
    "aten::conv1d": _conv(lambda inputs: False),
    "aten::conv2d": _conv(lambda inputs: False),
    "aten::conv3d": _conv(lambda inputs: False),
    "aten::conv_transpose1d": _conv(lambda inputs: True),
    "aten::conv_transpose2d": _conv(lambda inputs: True),
    "aten::conv_transpose3d": _conv(lambda inputs: True),
    "aten::linear": _linear,
    "aten::addmm": _matmul(1),
    "aten::mm": _matmul(0),
    "aten::matmul": _matmul(0),
    "aten::bmm": _matmul(0),
    "aten::baddbmm": _matmul(1),
    "aten::einsum": _einsum,
}

_PER_OUTPUT = """
    batch_norm group_norm layer_norm instance_norm
    relu relu_ relu6 relu6_ hardtanh hardtanh_ leaky_relu leaky_relu_ elu elu_
    hardswish hardswish_ hardsigmoid hardsigmoid_ silu silu_ sigmoid sigmoid_
    gelu tanh tanh_ mish mish_ softplus clamp clamp_ clamp_min clamp_min_
    softmax log_softmax exp neg abs sqrt rsqrt
    add add_ sub sub_ rsub mul mul_ div div_
    upsample_nearest2d upsample_bilinear2d upsample_bicubic2d
""".split()
_PER_INPUT = "adaptive_avg_pool2d adaptive_max_pool2d mean sum amax".split()
_POOLS = "max_pool1d max_pool2d max_pool3d avg_pool1d avg_pool2d avg_pool3d".split()
_FREE = """
    pad constant_pad_nd reflection_pad2d replication_pad2d zero_pad2d
    cat stack flatten unflatten view view_as reshape reshape_as contiguous clone
    to type_as detach expand expand_as permute transpose t squeeze unsqueeze
    select slice narrow chunk split split_with_sizes unbind
    size numel Int ScalarImplicit floor_divide floordiv remainder
    dropout dropout_ feature_dropout alpha_dropout
    zeros zeros_like ones ones_like empty full full_like arange copy_
""".split()

_HANDLES: dict[str, Handle] = {
    **{op: _macs(fn) for op, fn in _MAC_OPS.items()},
    **{f"aten::{op}": _other(_out_numel) for op in _PER_OUTPUT},
    **{f"aten::{op}": _other(_in_numel) for op in _PER_INPUT},
    **{f"aten::{op}": _other(_pool) for op in _POOLS},
    **{f"aten::{op}": _zero for op in _FREE},
}


def count_macs(
    model: nn.Module, input_shape: tuple[int, int, int], strict: bool = True
) -> MacReport:
    """Count MACs and element operations of ``model`` on one ``(C, H, W)`` input.

    Raises ``UnsupportedOperatorError`` if ``strict`` and an operator has no handle;
    otherwise unsupported operators are listed in the report.
    """
    was_training = model.training
    model.eval()
    try:
        analysis = JitModelAnalysis(model, (torch.randn(1, *input_shape),))
        analysis._ignored_ops = set()  # no public way to un-ignore fvcore's skip list
        analysis.set_op_handle(**_HANDLES)
        analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        analysis.tracer_warnings("none")
        with torch.no_grad():
            counts = analysis.by_module_and_operator()
        unsupported = dict(analysis.unsupported_ops())
    finally:
        model.train(was_training)
    if strict and unsupported:
        raise UnsupportedOperatorError(unsupported)
    children = {n: counts[analysis.canonical_module_name(n)] for n, _ in model.named_children()}
    return MacReport(
        macs=int(counts[""][_MACS]),
        other_ops=int(counts[""][_OTHER]),
        by_module={n: int(c[_MACS]) for n, c in children.items()},
        other_by_module={n: int(c[_OTHER]) for n, c in children.items()},
        unsupported=unsupported,
    )
