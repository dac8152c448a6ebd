"""IDX files (the MNIST / Fashion-MNIST format) and folders of them.

An IDX file is ``0x00 0x00 <dtype> <ndim>``, then ``ndim`` big-endian uint32 sizes,
then the values in big-endian row-major order; it may be gzipped.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .proxy import ProxyDataset, balanced_indices

DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def read_idx(path: Path) -> np.ndarray:
    """Decode one IDX file (gzipped or raw) into a native-endian array."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise UserError(f"dataset file '{path}': corrupt gzip data ({e})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in DTYPES or raw[3] == 0:
        raise UserError(f"dataset file '{path}': not an IDX file (bad magic number {raw[:4].hex() or 'none'})")
    ndim, dtype = raw[3], np.dtype(DTYPES[raw[2]])
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise UserError(f"dataset file '{path}': truncated IDX header ({len(raw)} bytes for {ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(shape)) * dtype.itemsize
    found = len(raw) - header
    if found != expected:
        problem = "truncated" if found < expected else "trailing bytes in"
        raise UserError(f"dataset file '{path}': {problem} IDX data ({expected} bytes for shape {shape}, found {found})")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def find_idx_files(folder: Path) -> dict[str, Path] | None:
    """The four standard IDX files in ``folder`` (raw or ``.gz``), or None if any is missing."""
    found = {}
    for stem in STEMS:
        candidates = [folder / stem, folder / f"{stem}.gz"]
        found[stem] = next((p for p in candidates if p.is_file()), None)
    return None if None in found.values() else found


def _read_split(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images (N×1×H×W uint8) and labels (N int64) from an images file and a labels file."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8 or len(images) == 0:
        raise UserError(
            f"dataset file '{images_path}': expected N×H×W uint8 images, got {images.dtype} {images.shape}"
        )
    if labels.shape != (len(images),) or labels.dtype != np.uint8:
        raise UserError(
            f"dataset file '{labels_path}': expected {len(images)} uint8 labels, got {labels.dtype} {labels.shape}"
        )
    return images[:, None], labels.astype(np.int64)


def load_idx_folder(
    folder: Path,
    *,
    name: str | None = None,
    class_names: tuple[str, ...] = (),
    train_limit: int | None,
    val_limit: int | None,
    seed: int,
) -> ProxyDataset:
    """Load the four standard IDX files in ``folder`` (named after it by default); validation is ``t10k``."""
    files = find_idx_files(folder)
    if files is None:
        raise UserError(f"dataset '{folder}': expected IDX files {', '.join(s + '[.gz]' for s in STEMS)}")
    train_x, train_y = _read_split(files["train-images-idx3-ubyte"], files["train-labels-idx1-ubyte"])
    val_x, val_y = _read_split(files["t10k-images-idx3-ubyte"], files["t10k-labels-idx1-ubyte"])
    train, val = balanced_indices(train_y, train_limit, seed), balanced_indices(val_y, val_limit, seed + 1)
    num_classes = max(len(class_names), int(max(train_y.max(), val_y.max())) + 1)
    return ProxyDataset(
        torch.from_numpy(train_x[train]), torch.from_numpy(train_y[train]),
        torch.from_numpy(val_x[val]), torch.from_numpy(val_y[val]),
        num_classes, name or folder.name, str(folder.resolve()), class_names,
    )
