"""The in-memory proxy dataset and its batch pipeline.

Images stay ``uint8`` (N×C×H×W) in memory; :meth:`ProxyDataset.batches` turns them
into normalised ``float32`` batches at the resolution and channel count a candidate
network wants. Resizing is bilinear with antialiasing in both directions (it only
matters when shrinking), so objects keep the same relative size at every resolution.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Literal

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError

Split = Literal["train", "val"]


@dataclass(frozen=True, eq=False)
class ProxyDataset:
    """A small labelled image dataset, split into train and validation; treat it as read-only."""

    train_x: torch.Tensor  # uint8, N×C×H×W
    train_y: torch.Tensor  # int64, N
    val_x: torch.Tensor
    val_y: torch.Tensor
    num_classes: int
    name: str
    source: str  # where it was read from
    class_names: tuple[str, ...] = ()
    _stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        for split in ("train", "val"):
            x, y = self._split(split)
            if x.dtype != torch.uint8 or x.dim() != 4:
                raise ValueError(f"{split}_x must be a uint8 N×C×H×W tensor, got {x.dtype} {tuple(x.shape)}")
            if y.dtype != torch.int64 or y.shape != (len(x),):
                raise ValueError(f"{split}_y must be {len(x)} int64 labels, got {y.dtype} {tuple(y.shape)}")
            if len(y) and not 0 <= int(y.min()) <= int(y.max()) < self.num_classes:
                raise ValueError(f"{split}_y has labels outside [0, {self.num_classes})")
        if self.train_x.shape[1:] != self.val_x.shape[1:]:
            raise ValueError(f"train and val images differ: {tuple(self.train_x.shape)} vs {tuple(self.val_x.shape)}")
        if self.class_names and len(self.class_names) != self.num_classes:
            raise ValueError(f"{len(self.class_names)} class names for {self.num_classes} classes")

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """The stored ``(channels, height, width)``."""
        c, h, w = self.train_x.shape[1:]
        return c, h, w

    def num_batches(self, split: Split, batch_size: int) -> int:
        """How many batches :meth:`batches` yields for ``split``."""
        n = len(self._split(split)[0])
        if split == "train" and n >= batch_size:
            return n // batch_size
        return -(-n // batch_size)

    def batches(
        self,
        split: Split,
        batch_size: int,
        resolution: int,
        channels: int,
        generator: torch.Generator | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(images, labels)``: float32 ``channels_last`` B×channels×resolution×resolution, int64 B.

        Train batches are shuffled with ``generator`` and a final incomplete batch is
        dropped (unless there is no complete one); val batches come in order, all of them.
        Images are normalised per channel with the train split's mean and std.
        """
        if batch_size < 1 or resolution < 1:
            raise ValueError(f"batch_size and resolution must be positive, got {batch_size} and {resolution}")
        x, y = self._split(split)
        scale, shift = self._normaliser(channels)
        order = torch.randperm(len(x), generator=generator) if split == "train" else torch.arange(len(x))
        for i in range(self.num_batches(split, batch_size)):
            idx = order[i * batch_size:(i + 1) * batch_size]
            images = x.index_select(0, idx).float()
            if images.shape[1] == 3 and channels == 1:
                images = images.mean(dim=1, keepdim=True)
            if images.shape[-2:] != (resolution, resolution):
                images = F.interpolate(images, size=(resolution, resolution), mode="bilinear", antialias=True)
            images = images.expand(-1, channels, -1, -1) * scale + shift
            yield images.contiguous(memory_format=torch.channels_last), y.index_select(0, idx)

    def _split(self, split: Split) -> tuple[torch.Tensor, torch.Tensor]:
        if split == "train":
            return self.train_x, self.train_y
        if split == "val":
            return self.val_x, self.val_y
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")

    def check_channels(self, channels: int) -> None:
        """Raise a one-line :class:`UserError` unless batches can be served with ``channels`` channels."""
        self._normaliser(channels)

    def _normaliser(self, channels: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale, shift)`` of shape 1×channels×1×1 mapping raw 0–255 values to standardised ones."""
        if channels not in self._stats:
            mean, std = _channel_stats(self.train_x, channels, self.name)
            self._stats[channels] = ((1 / (255 * std)).view(1, -1, 1, 1), (-mean / std).view(1, -1, 1, 1))
        return self._stats[channels]


def _channel_stats(x: torch.Tensor, channels: int, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (on the 0–1 scale) of ``x`` seen with ``channels`` channels.

    Computed from value histograms, so it needs no float copy of the dataset.
    """
    native = x.shape[1]
    if channels == native:
        planes, levels = [x[:, c] for c in range(native)], 255
    elif native == 1 and channels == 3:
        planes, levels = [x[:, 0]] * 3, 255
    elif native == 3 and channels == 1:
        planes, levels = [x.sum(dim=1, dtype=torch.int16)], 3 * 255
    else:
        raise UserError(f"dataset '{name}': cannot adapt {native}-channel images to {channels} channels (only 1 ↔ 3)")
    values = torch.arange(levels + 1, dtype=torch.float64) / levels
    means, stds = [], []
    for plane in planes:
        hist = torch.bincount(plane.reshape(-1), minlength=levels + 1).double()
        mean = (hist * values).sum() / hist.sum().clamp(min=1)
        var = (hist * (values - mean) ** 2).sum() / hist.sum().clamp(min=1)
        means.append(mean)
        stds.append(var.sqrt().clamp(min=1 / 255))
    return torch.stack(means).float(), torch.stack(stds).float()


def balanced_indices(labels: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """Sorted indices of a class-balanced random subset of at most ``limit`` samples.

    Each class is shuffled with ``seed`` and classes are drawn round-robin, so counts
    differ by at most one unless a class runs out. ``None`` keeps everything.
    """
    if limit is None or limit >= len(labels):
        return np.arange(len(labels))
    if limit < 1:
        raise UserError(f"dataset limit must be a positive number of images, got {limit}")
    rng = np.random.default_rng(seed)
    rank = np.empty(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        rank[rng.permutation(members)] = np.arange(len(members))
    round_robin = np.lexsort((labels, rank))
    return np.sort(round_robin[:limit])
