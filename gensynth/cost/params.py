"""Parameter counting."""

from __future__ import annotations

from torch import nn


def count_params(model: nn.Module) -> int:
    """Number of parameters, trainable or not (buffers excluded, shared ones once)."""
    return sum(p.numel() for p in model.parameters())
