"""PyTorch side: blocks, the built-in ops' module factories and MAC rules, and the graph → module builder."""
from .blocks import AttentionCondenser, BlurPool2d, ConvBNAct, DoubleCondensingAttentionCondenser
from .builder import build_model, module_name, output_shape

__all__ = [
    "AttentionCondenser", "BlurPool2d", "ConvBNAct", "DoubleCondensingAttentionCondenser",
    "build_model", "module_name", "output_shape",
]
