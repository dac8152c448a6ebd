"""IDX files (the MNIST / Fashion-MNIST format) and folders of them.

An IDX file is ``0x00 0x00 <dtype> <ndim>``, then ``ndim`` big-endian uint32 sizes,
then the values in big-endian row-major order; it may be gzipped.
"""
from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from ..errors import UserError
from .proxy import ProxyDataset, balanced_indices

DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MAX_IDX_BYTES = 2**30
"""The largest IDX payload read, raw or decompressed (the full Fashion-MNIST training images are 47 MB)."""
STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def read_idx(path: Path) -> np.ndarray:
    """Decode one IDX file (gzipped or raw) into a native-endian array.

    The header says how many bytes the data has; no more than that is read or
    decompressed, so an oversized file or a gzip bomb fails at once.
    """
    gzipped = False
    try:
        with path.open("rb") as raw:
            gzipped = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            with gzip.GzipFile(fileobj=raw) if gzipped else raw as f:
                return _decode_idx(f, path)
    except (OSError, EOFError, zlib.error) as e:
        problem = "corrupt gzip data" if gzipped else "cannot read"
        raise UserError(f"dataset file '{path}': {problem} ({e})") from None


def _decode_idx(f: BinaryIO, path: Path) -> np.ndarray:
    """The array in the (decompressed) IDX stream ``f``, reading at most one byte past what its header declares."""
    magic = f.read(4)
    if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in DTYPES or magic[3] == 0:
        raise UserError(f"dataset file '{path}': not an IDX file (bad magic number {magic.hex() or 'none'})")
    ndim, dtype = magic[3], np.dtype(DTYPES[magic[2]])
    dims = f.read(4 * ndim)
    if len(dims) < 4 * ndim:
        raise UserError(f"dataset file '{path}': truncated IDX header ({4 + len(dims)} bytes for {ndim} dimensions)")
    shape = tuple(int(d) for d in np.frombuffer(dims, dtype=">u4"))
    expected = math.prod(shape) * dtype.itemsize
    if expected > MAX_IDX_BYTES:
        raise UserError(f"dataset file '{path}': IDX shape {shape} needs {expected:,} bytes, more than the {MAX_IDX_BYTES:,} allowed")
    data = f.read(expected + 1)
    if len(data) != expected:
        problem = "truncated" if len(data) < expected else "trailing bytes in"
        found = f"found {len(data)}" if len(data) < expected else "found more"
        raise UserError(f"dataset file '{path}': {problem} IDX data ({expected} bytes for shape {shape}, {found})")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


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
    if images.ndim != 3 or images.dtype != np.uint8 or 0 in images.shape:
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
    if train_x.shape[1:] != val_x.shape[1:]:
        raise UserError(f"dataset file '{files['t10k-images-idx3-ubyte']}': {val_x.shape[2]}×{val_x.shape[3]} images, "
                        f"but the training images are {train_x.shape[2]}×{train_x.shape[3]}")
    for labels, stem in ((train_y, "train-labels-idx1-ubyte"), (val_y, "t10k-labels-idx1-ubyte")):
        if class_names and labels.max() >= len(class_names):
            raise UserError(f"dataset file '{files[stem]}': label {labels.max()} for {len(class_names)} classes")
    train, val = balanced_indices(train_y, train_limit, seed), balanced_indices(val_y, val_limit, seed + 1)
    num_classes = max(len(class_names), int(max(train_y.max(), val_y.max())) + 1)
    return ProxyDataset(
        torch.from_numpy(train_x[train]), torch.from_numpy(train_y[train]),
        torch.from_numpy(val_x[val]), torch.from_numpy(val_y[val]),
        num_classes, name or folder.name, str(folder.resolve()), class_names,
    )
