"""The inference form of a built model: what a deployed network runs, and what latency is timed on.

Training-time structure that inference does not need is compiled away, so
every graph (candidates and references alike) is timed as it would be deployed:

* **exact rewrites** of the attention condensers (``gensynth.nn.rewrites.REWRITES``:
  sigmoid, product and scale at the condensed resolution, one upsampling after);
* **re-parameterisation**: a submodule that defines ``reparameterize()`` (the
  protocol, duck-typed: a method taking no arguments that returns one module
  computing, in eval mode, the same function as the submodule, e.g. MobileOne's
  branches merged into one convolution) is replaced by what it returns; the
  outermost one wins, so a module re-parameterises its own children;
* **batch-norm folding**: a ``BatchNorm2d`` (with running statistics) whose
  only input is a ``Conv2d`` whose only consumer it is, both called once by the
  same parent module, is folded into the convolution's weight and bias and
  becomes an ``nn.Identity``. The pairs are found by tracing each module's own
  forward with torch.fx (its children as leaves), so ``ConvBNAct``, the condensed
  branches of the attention condensers and any block written the same way are
  covered; a module whose forward cannot be traced is left as it is (its
  children are still visited).

Everything else is left as it is. Outputs equal the training form's in eval
mode up to float rounding (tests/test_inference_form.py, tests/test_rewrites.py: within 1e-5 for the rewrites).
"""
from __future__ import annotations

import copy
from collections import Counter

from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_weights

from .rewrites import REWRITES


def inference_form(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode, re-parameterised and with batch norms folded; ``model`` is untouched."""
    return fold_batchnorms(_reparameterize(copy.deepcopy(model).eval()), copy_first=False)


def fold_batchnorms(model: nn.Module, copy_first: bool = True) -> nn.Module:
    """``model`` (a copy, unless ``copy_first`` is False) in eval mode with every conv → batch-norm pair folded, nothing else."""
    model = (copy.deepcopy(model) if copy_first else model).eval()
    for module in list(model.modules()):
        _fold_batchnorms(module)
    return model


def _reparameterize(root: nn.Module) -> nn.Module:
    """Replace every outermost submodule that has a rewrite (``REWRITES`` or ``reparameterize()``) by the module it returns."""
    rewrite = REWRITES.get(type(root)) or getattr(root, "reparameterize", None)
    if callable(rewrite):
        single = rewrite(root) if type(root) in REWRITES else rewrite()
        if not isinstance(single, nn.Module):
            raise TypeError(f"the rewrite of {type(root).__name__} returned {type(single).__name__}, not a module")
        return single.eval()
    for name, child in list(root.named_children()):
        setattr(root, name, _reparameterize(child))
    return root


class _ChildrenAsLeaves(fx.Tracer):
    """Trace one module's own forward: every submodule call stays a single ``call_module`` node."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return True


def _fold_batchnorms(module: nn.Module) -> None:
    """Fold each conv → batch-norm pair in ``module``'s own forward (see the module docstring)."""
    if not any(isinstance(child, nn.BatchNorm2d) for child in module.children()):
        return
    for conv_name, bn_name in _chained_pairs(module):
        conv, bn = module.get_submodule(conv_name), module.get_submodule(bn_name)
        if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.running_mean is not None:
            conv.weight, conv.bias = fuse_conv_bn_weights(conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias)
            parent, _, name = bn_name.rpartition(".")
            setattr(module.get_submodule(parent), name, nn.Identity())


def _chained_pairs(module: nn.Module) -> list[tuple[str, str]]:
    """(first, second) submodule names where ``second``'s only input is ``first``'s output and nothing else reads it.

    A plain ``nn.Sequential`` chains its children (no tracing needed: most pairs
    are in ``ConvBNAct``); any other forward is traced, each submodule a leaf,
    and only submodules called once count.
    """
    if type(module).forward is nn.Sequential.forward:
        names = [name for name, _ in module.named_children()]
        return list(zip(names, names[1:]))
    try:
        graph = _ChildrenAsLeaves().trace(module)
    except Exception:  # a forward fx cannot trace symbolically (data-dependent control flow, ...): left as it is
        return []
    calls = [node for node in graph.nodes if node.op == "call_module"]
    once = {target for target, n in Counter(node.target for node in calls).items() if n == 1}
    return [
        (node.args[0].target, node.target) for node in calls
        if len(node.args) == 1 and not node.kwargs and isinstance(node.args[0], fx.Node) and node.args[0].op == "call_module"
        and len(node.args[0].users) == 1 and {node.target, node.args[0].target} <= once
    ]
