"""PyTorch side: blocks, the built-in ops' module factories and MAC rules, the graph → module builder, the inference form."""
from .blocks import AttentionCondenser, BlurPool2d, ConvBNAct, DoubleCondensingAttentionCondenser
from .builder import build_model, module_name, output_shape
from .inference import fold_batchnorms, inference_form

__all__ = [
    "AttentionCondenser", "BlurPool2d", "ConvBNAct", "DoubleCondensingAttentionCondenser",
    "build_model", "fold_batchnorms", "inference_form", "module_name", "output_shape",
]
