"""Proxy datasets: Fashion-MNIST, ImageFolder, CIFAR-10 and IDX folders as small in-memory tensors."""
from .idx import read_idx
from .proxy import ProxyDataset, balanced_indices
from .registry import EXPECTED, FASHION_MNIST, LOADERS, detect_format, load_dataset

__all__ = [
    "EXPECTED", "FASHION_MNIST", "LOADERS", "ProxyDataset", "balanced_indices", "detect_format", "load_dataset",
    "read_idx",
]
