"""Zero-cost screens: training-free proxies of a candidate's trainability, scored at initialisation.

The proxies follow the reference implementations (docs/zero-cost.md):

* ``synflow``, ``snip``, ``grad_norm``, ``jacob_cov``: Abdelfattah et al. 2021, "Zero-Cost Proxies for
  Lightweight NAS" (SamsungLabs/zero-cost-nas, ``foresight/pruners/measures``);
* ``naswot``: Mellor et al. 2021, "Neural Architecture Search without Training" (the Hamming kernel of
  BayesWatch/nas-without-training); ``jacob_cov`` is that paper's first version;
* ``params`` and ``macs``: the baselines any proxy has to beat.

Every proxy is ``proxy(model, inputs, targets, graph=None) -> float``, higher meaning predicted better;
``graph`` is the :class:`ArchGraph` the model was built from, read only by ``macs``. The proxies leave
the model's weights as they were; the gradient ones score it in training mode (batch statistics, as the
references' freshly built networks) with dropout off.

The ``screen`` stage (:class:`ScreenStage`) builds the network proxy training builds, from the same seed
(so it sees the initial weights training starts from), and scores it on one fixed batch of training
images. A proxy whose value is not finite (a singular kernel, an overflow) fails the candidate's screen,
naming the proxy: a ranking cannot place it, and recording it as a number would hide the cause.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from ..cost import graph_macs
from ..ir.graph import ArchGraph
from ..ir.serialize import from_dict, to_dict
from ..nn.builder import build_model
from ..registry import Registry
from ..space.space import ProxyAdaptation
from .inquisitor import TaskResult, FailureGuard, torch_threads
from .stages import EvaluationStage
from .training import proxy_graph

if TYPE_CHECKING:
    from ..data import ProxyDataset
    from ..space.space import SearchSpace
    from .config import SearchConfig

Proxy = Callable[..., float]
"""``proxy(model, inputs, targets, graph=None) -> float``; higher = predicted better."""

SCORED = (nn.Conv2d, nn.Linear)
"""The layers whose weights the gradient proxies sum over (the reference's ``get_layer_metric_array``)."""

RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU, nn.GELU)
"""Activations whose binary codes (pre-activation > 0) make up the NASWOT kernel."""

SCREENED = ("synflow", "naswot", "jacob_cov", "grad_norm", "snip")
"""The proxies the ``screen`` stage measures, each recorded as ``zc_<name>``."""

SCREEN_BATCH = 64
JACOB_COV_K = 1e-5


# -- the proxies -----------------------------------------------------------------------------------------

def synflow(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, graph: ArchGraph | None = None) -> float:
    """ln of SynFlow (Tanaka et al. 2020) as zero-cost-nas computes it: ``sum |θ ⊙ ∂L/∂θ|`` over conv and linear weights.

    On a float64 deep copy with every parameter and buffer replaced by its absolute value, ``L`` is the sum
    of the output for one all-ones input. Batch norm is bypassed (identity), as the reference's ``bn=False``
    copy does. The natural log of the sum is reported (per-layer float64 sums combined with logsumexp, so
    the total cannot overflow): the ranking is the reference's and deep networks' values stay readable.
    An overflow of the float64 forward pass, or of one layer's sum, gives inf.
    """
    net = copy.deepcopy(model).double()
    _bypass_batchnorm(net)
    _prepare(net)
    with torch.no_grad():
        for tensor in [*net.parameters(), *net.buffers()]:
            if tensor.is_floating_point():
                tensor.abs_()
    ones = torch.ones((1, *inputs.shape[1:]), dtype=torch.float64)
    weights = _weights(net)
    grads = torch.autograd.grad(net(ones).sum(), weights, allow_unused=True)
    layers = [(w.detach() * g).abs().sum() for w, g in zip(weights, grads) if g is not None]
    if not layers:
        return -math.inf
    return float(torch.logsumexp(torch.stack(layers).log(), dim=0))


def naswot(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, graph: ArchGraph | None = None) -> float:
    """NASWOT (Mellor et al. 2021): ``slogdet`` of the Hamming kernel of the batch's binary activation codes.

    Each ReLU-like activation contributes ``K += c cᵀ + (1 - c)(1 - c)ᵀ``, with ``c`` the flattened codes
    ``input > 0`` per image (the reference hooks ReLU inputs; for hswish, silu and gelu, whose output is
    positive exactly where their input is, the same sign of the pre-activation is used).
    """
    _prepare(model)
    kernel = torch.zeros(len(inputs), len(inputs), dtype=torch.float64)

    def accumulate(module: nn.Module, args: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        codes = (args[0].detach().reshape(len(args[0]), -1) > 0).float()
        ones = codes.sum(dim=1, dtype=torch.float64)
        # c cᵀ + (1 - c)(1 - c)ᵀ = 2 c cᵀ + n - |c_i| - |c_j|: one matmul, exact in float32 below 2²⁴ units
        kernel.add_(2 * (codes @ codes.T).double() + codes.shape[1] - ones[:, None] - ones[None, :])

    handles = [m.register_forward_hook(accumulate) for m in model.modules() if isinstance(m, RELU_LIKE)]
    try:
        with torch.no_grad():
            model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return float(torch.linalg.slogdet(kernel)[1])


def jacob_cov(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, graph: ArchGraph | None = None) -> float:
    """Mellor et al. v1, as zero-cost-nas: ``-Σ log(v + k) + 1/(v + k)`` over the eigenvalues ``v`` of the
    correlation matrix of the per-image input Jacobians of the output sum (``k`` = 1e-5).

    The eigenvalues come from ``eigvalsh`` (the matrix is symmetric) rather than the reference's ``eig``.
    A constant Jacobian row makes the correlation undefined: NaN.
    """
    _prepare(model)
    x = inputs.detach().clone().requires_grad_(True)
    (jacobian,) = torch.autograd.grad(model(x).sum(), x)
    corr = torch.corrcoef(jacobian.reshape(len(x), -1).double())
    if not torch.isfinite(corr).all():
        return math.nan
    v = torch.linalg.eigvalsh(corr)
    return float(-(torch.log(v + JACOB_COV_K) + 1 / (v + JACOB_COV_K)).sum())


def grad_norm(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, graph: ArchGraph | None = None) -> float:
    """Sum over conv and linear layers of the L2 norm of the cross-entropy loss's weight gradient."""
    grads = _loss_grads(model, inputs, targets)
    return float(sum(g.norm() for _, g in grads))


def snip(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, graph: ArchGraph | None = None) -> float:
    """SNIP (Lee et al. 2019) as zero-cost-nas: ``sum |θ ⊙ ∂L/∂θ|`` over conv and linear weights, cross-entropy ``L``."""
    grads = _loss_grads(model, inputs, targets)
    return float(sum((w * g).abs().sum() for w, g in grads))


def params(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, graph: ArchGraph | None = None) -> float:
    """Baseline: the number of trainable parameters."""
    return float(sum(p.numel() for p in model.parameters() if p.requires_grad))


def macs(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, graph: ArchGraph | None = None) -> float:
    """Baseline: MACs of one forward pass of ``graph`` (at its own resolution), by the graph's per-op rules."""
    if graph is None:
        raise ValueError("the macs baseline needs the graph the model was built from")
    return float(sum(graph_macs(graph).values()))


def _prepare(model: nn.Module) -> None:
    """Training mode (batch statistics, as the references score freshly built networks), dropout off."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.modules.dropout._DropoutNd):
            module.eval()


def _bypass_batchnorm(model: nn.Module) -> None:
    """Replace every batch norm by an identity (the reference's ``copynet(bn=False)``)."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, _BatchNorm):
                setattr(parent, name, nn.Identity())


def _weights(model: nn.Module) -> list[nn.Parameter]:
    return [m.weight for m in model.modules() if isinstance(m, SCORED)]


def _loss_grads(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``(weight, ∂L/∂weight)`` of every conv and linear layer the mean cross-entropy ``L`` reaches."""
    _prepare(model)
    weights = _weights(model)
    grads = torch.autograd.grad(F.cross_entropy(model(inputs), targets), weights, allow_unused=True)
    return [(w.detach(), g) for w, g in zip(weights, grads) if g is not None]


ZERO_COST: Registry[Proxy] = Registry("zero-cost proxy")


def register_zero_cost(name: str, proxy: Proxy, override: bool = False) -> Proxy:
    """Add a proxy ``(model, inputs, targets, graph=None) -> float`` (higher = predicted better)."""
    return ZERO_COST.register(name, proxy, override)


for _proxy in (synflow, naswot, jacob_cov, grad_norm, snip, params, macs):
    register_zero_cost(_proxy.__name__, _proxy)

# -- the screen stage --------------------------------------------------------------------------------------

def init_model(graph: ArchGraph, seed: int) -> nn.Module:
    """``graph`` built from ``seed``: proxy training's initialisation (PyTorch's default)."""
    torch.manual_seed(seed)
    return build_model(graph)


def fixed_batch(data: ProxyDataset, batch_size: int, resolution: int, channels: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` training images (all, if fewer), drawn in a fixed order by ``seed``, through the training pipeline.

    A seeded draw rather than the first images: an image-folder dataset is stored class by class.
    """
    return next(data.batches("train", batch_size, resolution, channels, torch.Generator().manual_seed(seed)))


@dataclass
class ScreenTask:
    """Score ``graph`` (a :func:`gensynth.ir.to_dict` mapping) with the :data:`SCREENED` proxies; never raises."""

    graph: dict[str, Any]
    proxy: ProxyAdaptation
    seed: int
    threads: int
    batch_size: int = SCREEN_BATCH
    needs_data: ClassVar[bool] = True

    def __call__(self, data: ProxyDataset | None = None) -> TaskResult:
        assert data is not None, "a screen task needs the executor's dataset"
        return screen(self, data)


def screen(task: ScreenTask, data: ProxyDataset) -> TaskResult:
    """Every screened proxy's score; a crash or a value that is not finite fails the screen, naming the proxy."""
    start = time.perf_counter()
    with torch_threads(task.threads), FailureGuard() as guard:
        graph = proxy_graph(from_dict(task.graph), task.proxy, data.num_classes)
        model = init_model(graph, task.seed)
        inputs, targets = fixed_batch(data, task.batch_size, task.proxy.resolution, graph.input_channels, task.seed)
        measurements: dict[str, float] = {}
        problems = []
        for name in SCREENED:
            value, problem = _score(name, model, inputs, targets, graph)
            if problem:
                problems.append(problem)
            else:
                measurements[f"zc_{name}"] = value
        timings = {"screen_s": time.perf_counter() - start}
        return TaskResult(not problems, measurements, reason="; ".join(problems), timings=timings)
    return TaskResult(False, reason=guard.reason, timings={"screen_s": time.perf_counter() - start})


def _score(name: str, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, graph: ArchGraph) -> tuple[float, str]:
    """``(value, "")``, or ``(nan, reason)`` when proxy ``name`` crashed or gave a value that is not finite."""
    with FailureGuard() as guard:
        value = ZERO_COST.get(name)(model, inputs, targets, graph)
        return (value, "") if math.isfinite(value) else (math.nan, f"zero-cost proxy {name} is not finite ({value})")
    return math.nan, f"zero-cost proxy {name} {guard.reason}"


class ScreenStage(EvaluationStage):
    """Zero-cost proxies at the space's proxy adaptation, on one fixed batch, from the run's seed."""

    name = "screen"
    measures = tuple(f"zc_{name}" for name in SCREENED)

    def __init__(self, config: SearchConfig, space: SearchSpace, threads: int):
        self.proxy, self.seed, self.threads, self.batch_size = space.proxy, config.seed, threads, SCREEN_BATCH

    def task(self, graph: ArchGraph) -> ScreenTask:
        return ScreenTask(to_dict(graph), self.proxy, self.seed, self.threads, self.batch_size)
