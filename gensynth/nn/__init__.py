"""PyTorch side: blocks, the op → module table, and the graph → module builder."""
from .blocks import AttentionCondenser, BlurPool2d, ConvBNAct, DoubleCondensingAttentionCondenser
from .builder import build_model, module_name, output_shape
from .layers import MODULES, register_module

__all__ = [
    "AttentionCondenser", "BlurPool2d", "ConvBNAct", "DoubleCondensingAttentionCondenser", "MODULES",
    "build_model", "module_name", "output_shape", "register_module",
]
