"""Exports for deployers: a standalone PyTorch source file, ONNX files that say whether their weights are trained."""
from .model import UNTRAINED, build_with_weights, graph_to_onnx
from .pytorch import EMITTERS, to_pytorch_source, unsupported_reason

__all__ = ["EMITTERS", "UNTRAINED", "build_with_weights", "graph_to_onnx", "to_pytorch_source", "unsupported_reason"]
