"""Proxy training: a short, seeded training run at the proxy resolution, then validation top-1."""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import partial

import torch
from torch import nn

from ..data import ProxyDataset
from ..ir.graph import ArchGraph
from ..ir.transforms import for_proxy
from ..nn.builder import build_model
from ..space.space import ProxyAdaptation
from .config import TrainingConfig


class Diverged(RuntimeError):
    """The training loss stopped being finite."""


@dataclass(frozen=True)
class TrainResult:
    """Validation top-1 (in %), the last training loss, and the trained weights (``torch.save`` bytes)."""

    accuracy: float
    train_loss: float
    steps: int
    weights: bytes


def proxy_graph(graph: ArchGraph, proxy: ProxyAdaptation, num_classes: int) -> ArchGraph:
    """The graph that proxy training builds: the dataset's head, the documented reduction skip."""
    return for_proxy(graph.retarget(num_classes=num_classes, resolution=proxy.resolution), proxy.skip_reductions)


def proxy_train(graph: ArchGraph, data: ProxyDataset, proxy: ProxyAdaptation, cfg: TrainingConfig, seed: int) -> TrainResult:
    """Train ``graph`` (adapted with :func:`proxy_graph`) from a seeded initialisation; evaluate top-1."""
    torch.manual_seed(seed)
    model = build_model(proxy_graph(graph, proxy, data.num_classes))
    channels = graph.input_channels
    memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format).train()
    steps_per_epoch = data.num_batches("train", cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, partial(warmup_cosine, total=total))
    loss_fn = nn.CrossEntropyLoss()
    shuffle = torch.Generator().manual_seed(seed)
    step, loss_value = 0, math.nan
    for _ in range(cfg.epochs):
        for images, labels in data.batches("train", cfg.batch_size, proxy.resolution, channels, shuffle):
            loss = loss_fn(model(images.contiguous(memory_format=memory_format)), labels)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise Diverged(f"training loss became {loss_value} at step {step + 1}/{total}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
    recalibrate_batchnorm(model, data, proxy.resolution, channels, cfg.batch_size, memory_format, shuffle)
    accuracy = evaluate(model, data, proxy.resolution, channels, cfg.batch_size * 4, memory_format)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return TrainResult(accuracy, loss_value, step, buffer.getvalue())


def warmup_cosine(step: int, total: int, warmup: float = 0.2) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` of the steps, then cosine decay to 0."""
    ramp = max(1, round(warmup * total))
    if step < ramp:
        return (step + 1) / ramp
    return 0.5 * (1 + math.cos(math.pi * (step - ramp) / max(1, total - ramp)))


def recalibrate_batchnorm(model: nn.Module, data: ProxyDataset, resolution: int, channels: int, batch_size: int,
                          memory_format: torch.memory_format, shuffle: torch.Generator, batches: int = 8) -> None:
    """Re-estimate BatchNorm statistics as exact averages over ``batches`` training batches.

    A few dozen steps leave the running averages (momentum 0.1) far from the
    final weights' statistics, and eval-mode accuracy collapses to chance; NAS
    proxies recalibrate BN before evaluating for this reason.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    model.train()
    with torch.no_grad():
        for i, (images, _) in enumerate(data.batches("train", batch_size, resolution, channels, shuffle)):
            if i == batches:
                break
            model(images.contiguous(memory_format=memory_format))


def evaluate(model: nn.Module, data: ProxyDataset, resolution: int, channels: int, batch_size: int, memory_format: torch.memory_format) -> float:
    """Top-1 accuracy in % on the validation split."""
    model.eval()
    correct = seen = 0
    with torch.inference_mode():
        for images, labels in data.batches("val", batch_size, resolution, channels):
            correct += int((model(images.contiguous(memory_format=memory_format)).argmax(1) == labels).sum())
            seen += len(labels)
    return 100.0 * correct / max(seen, 1)
