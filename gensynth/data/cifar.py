"""CIFAR-10 in its python-batches layout (``data_batch_1..5``, ``test_batch``, ``batches.meta``).

The batches are pickles; they are read with an unpickler that only allows the few
numpy globals these files use, so a malicious file cannot run code.
"""
from __future__ import annotations

import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UserError
from .proxy import ProxyDataset, balanced_indices

MARKERS = ("batches.meta", "data_batch_1", "test_batch")
_NUMPY_GLOBALS = {
    ("_codecs", "encode"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    *((f"numpy.{core}.multiarray", name) for core in ("core", "_core") for name in ("_reconstruct", "scalar")),
    *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
}


class _NumpyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def is_cifar_folder(folder: Path) -> bool:
    """Whether ``folder`` looks like a CIFAR-10 python-batches folder."""
    return any((folder / marker).is_file() for marker in MARKERS)


def _unpickle(path: Path) -> dict[bytes, Any]:
    try:
        with path.open("rb") as f:
            obj = _NumpyUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError) as e:
        raise UserError(f"dataset file '{path}': not a readable CIFAR-10 pickle ({e})") from None
    if not isinstance(obj, dict):
        raise UserError(f"dataset file '{path}': expected a pickled dict, got {type(obj).__name__}")
    return obj


def _read_batches(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Images (N×3×32×32 uint8) and labels (N int64) of the given batch files."""
    images, labels = [], []
    for path in paths:
        batch = _unpickle(path)
        data, batch_labels = batch.get(b"data"), batch.get(b"labels")
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise UserError(f"dataset file '{path}': expected b'data' to be an N×3072 uint8 array")
        try:
            batch_labels = np.asarray(batch_labels, dtype=np.int64)
        except (TypeError, ValueError):
            batch_labels = None
        if batch_labels is None or batch_labels.shape != (len(data),) or not len(data):
            raise UserError(f"dataset file '{path}': expected one integer b'labels' entry per image")
        images.append(data.reshape(-1, 3, 32, 32))
        labels.append(batch_labels)
    return np.concatenate(images), np.concatenate(labels)


def load_cifar_folder(folder: Path, *, train_limit: int | None, val_limit: int | None, seed: int) -> ProxyDataset:
    """Load CIFAR-10 python batches: train from ``data_batch_*``, validation from ``test_batch``."""
    train_files = sorted(
        (p for p in folder.iterdir() if re.fullmatch(r"data_batch_\d+", p.name)), key=lambda p: int(p.name[11:])
    )
    if not train_files or not (folder / "test_batch").is_file():
        raise UserError(f"dataset '{folder}': CIFAR-10 folder needs data_batch_1..5 and test_batch")
    class_names: tuple[str, ...] = ()
    if (folder / "batches.meta").is_file():
        names = _unpickle(folder / "batches.meta").get(b"label_names", [])
        if not isinstance(names, list) or not all(isinstance(n, (bytes, str)) for n in names):
            raise UserError(f"dataset file '{folder / 'batches.meta'}': expected b'label_names' to be a list of names")
        class_names = tuple(n.decode(errors="replace") if isinstance(n, bytes) else n for n in names)
    (train_x, train_y), (val_x, val_y) = _read_batches(train_files), _read_batches([folder / "test_batch"])
    num_classes = len(class_names) or int(max(train_y.max(), val_y.max())) + 1
    if min(train_y.min(), val_y.min()) < 0 or max(train_y.max(), val_y.max()) >= num_classes:
        raise UserError(f"dataset '{folder}': labels outside [0, {num_classes}) for {num_classes} classes")
    train, val = balanced_indices(train_y, train_limit, seed), balanced_indices(val_y, val_limit, seed + 1)
    return ProxyDataset(
        torch.from_numpy(train_x[train]), torch.from_numpy(train_y[train]),
        torch.from_numpy(val_x[val]), torch.from_numpy(val_y[val]),
        num_classes, folder.name, str(folder.resolve()), class_names,
    )
