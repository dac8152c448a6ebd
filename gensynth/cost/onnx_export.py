"""ONNX export through the TorchScript-based exporter, with a dynamic batch axis."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

OPSET = 17
BATCH_AXIS = {"input": {0: "batch"}, "logits": {0: "batch"}}
"""Batch is symbolic so one file serves batch-1 latency and batched deployment; C×H×W stay fixed."""


def export_onnx(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    path: str | Path,
    doc_string: str = "",
    metadata: dict[str, str] | None = None,
) -> Path:
    """Export ``model`` in eval mode for ``(N, C, H, W)`` inputs, N dynamic, as ``input`` -> ``logits``.

    ``doc_string`` and ``metadata`` (the model's ``metadata_props``) travel with the
    file, so a reader of the ONNX alone can tell, e.g., trained from untrained weights.
    """
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
                dynamic_axes=BATCH_AXIS,
                opset_version=OPSET,
                dynamo=False,
            )
    finally:
        model.train(was_training)
    if doc_string or metadata:
        _annotate(path, doc_string, metadata or {})
    return path


def _annotate(path: Path, doc_string: str, metadata: dict[str, str]) -> None:
    import onnx  # the exporter above already needs it

    proto = onnx.load(str(path))
    proto.doc_string = doc_string
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
