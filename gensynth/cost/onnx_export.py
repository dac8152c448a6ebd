"""Batch-1 ONNX export through the TorchScript-based exporter."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

OPSET = 17


def export_onnx(model: nn.Module, input_shape: tuple[int, int, int], path: str | Path) -> Path:
    """Export ``model`` in eval mode for one ``(C, H, W)`` input as ``input`` -> ``logits``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", DeprecationWarning)
            # replicate padding exports as Slice ops that the folder leaves alone: harmless, but noisy
            warnings.filterwarnings("ignore", "Constant folding", UserWarning)
            torch.onnx.export(
                model,
                (torch.randn(1, *input_shape),),
                str(path),
                input_names=["input"],
                output_names=["logits"],
                opset_version=OPSET,
                dynamo=False,
            )
    finally:
        model.train(was_training)
    return path
