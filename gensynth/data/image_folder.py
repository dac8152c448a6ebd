"""ImageFolder datasets: one sub-folder of images per class, read with Pillow.

Either ``train/`` and ``val/`` folders each holding class folders, or class folders
directly, split 80/20 per class with the seed. Class names are the sorted folder names.
Images are centre-cropped to squares and resized to one common side (the median
shorter side, at most :data:`MAX_SIDE`); they are stored grayscale if every image
is grayscale, otherwise RGB. Limits are applied before decoding, so large folders
cost only what is kept.
"""
from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import UserError
from .proxy import ProxyDataset, balanced_indices

IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")
VAL_FOLDERS = ("val", "valid", "validation", "test")
VAL_FRACTION = 0.2
MAX_SIDE = 128
GRAY_MODES = frozenset({"1", "L", "LA", "I", "I;16", "F"})
IMAGE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError, Image.DecompressionBombWarning)
"""What Pillow raises for a damaged or oversized image file."""


def subfolders(folder: Path) -> list[str]:
    """Sorted names of the non-hidden sub-folders of ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _class_names(folder: Path) -> list[str]:
    names = subfolders(folder)
    if len(names) < 2:
        raise UserError(f"dataset '{folder}': ImageFolder needs at least 2 class folders, found {len(names)}")
    return names


def _scan(folder: Path, classes: list[str]) -> tuple[list[Path], np.ndarray]:
    """Image files under ``folder/<class>`` for each class present there, and their labels."""
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        if not (folder / name).is_dir():
            continue
        found = sorted(
            p for p in (folder / name).rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
        )
        if not found:
            raise UserError(f"dataset '{folder}': class folder '{name}' has no images ({' '.join(IMAGE_SUFFIXES)})")
        files += found
        labels += [label] * len(found)
    return files, np.array(labels, dtype=np.int64)


def _stratified_split(labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and val indices, :data:`VAL_FRACTION` of each class (of at least 2) to val."""
    rng = np.random.default_rng(seed)
    val = []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        n_val = max(1, round(len(members) * VAL_FRACTION)) if len(members) > 1 else 0
        val.append(rng.permutation(members)[:n_val])
    val_idx = np.sort(np.concatenate(val))
    return np.setdiff1d(np.arange(len(labels)), val_idx), val_idx


def _probe(path: Path) -> tuple[int, str]:
    """Shorter side and mode of an image, reading only its header; more pixels than Pillow's bomb limit is an error."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                return min(im.size), im.mode
    except IMAGE_ERRORS as e:
        raise UserError(f"dataset file '{path}': not a readable image ({_one_line(e)})") from None


def _read(path: Path, side: int, mode: str) -> np.ndarray:
    """One image as a C×side×side uint8 array, centre-cropped to a square."""
    try:
        with Image.open(path) as im:
            im = im.convert(mode)
            w, h = im.size
            s = min(w, h)
            box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
            pixels = np.asarray(im.resize((side, side), Image.Resampling.BILINEAR, box=box))
    except IMAGE_ERRORS as e:
        raise UserError(f"dataset file '{path}': not a readable image ({_one_line(e)})") from None
    return pixels[None] if pixels.ndim == 2 else pixels.transpose(2, 0, 1)


def _one_line(err: Exception) -> str:
    """``err``'s message on one line (some of Pillow's span several)."""
    return " ".join(str(err).split())


def load_image_folder(root: Path, *, train_limit: int | None, val_limit: int | None, seed: int) -> ProxyDataset:
    """Load an ImageFolder dataset (see the module docstring for the layouts)."""
    val_dir = next((root / name for name in VAL_FOLDERS if (root / name).is_dir()), None)
    if (root / "train").is_dir():
        if val_dir is None:
            alternatives = ", ".join(VAL_FOLDERS[1:])
            raise UserError(f"dataset '{root}': has a train/ folder but no val/ folder (or {alternatives})")
        classes = _class_names(root / "train")
        unknown = sorted(set(subfolders(val_dir)) - set(classes))
        if unknown:
            missing = ", ".join(unknown)
            raise UserError(f"dataset '{root}': {val_dir.name}/ has class folders missing from train/: {missing}")
        train_files, train_y = _scan(root / "train", classes)
        val_files, val_y = _scan(val_dir, classes)
        if not val_files:
            raise UserError(f"dataset '{val_dir}': no class folders of validation images")
    else:
        classes = _class_names(root)
        files, labels = _scan(root, classes)
        train_idx, val_idx = _stratified_split(labels, seed)
        train_files, train_y = [files[i] for i in train_idx], labels[train_idx]
        val_files, val_y = [files[i] for i in val_idx], labels[val_idx]
        if not val_files:
            raise UserError(f"dataset '{root}': too few images to split off validation (need 2 in some class)")
    train_keep, val_keep = balanced_indices(train_y, train_limit, seed), balanced_indices(val_y, val_limit, seed + 1)
    train_files, val_files = [train_files[i] for i in train_keep], [val_files[i] for i in val_keep]
    sides, modes = zip(*map(_probe, train_files + val_files))
    side = min(MAX_SIDE, int(np.median(sides)))
    read = partial(_read, side=side, mode="L" if GRAY_MODES.issuperset(modes) else "RGB")
    with ThreadPoolExecutor() as pool:
        train_x, val_x = np.stack(list(pool.map(read, train_files))), np.stack(list(pool.map(read, val_files)))
    return ProxyDataset(
        torch.from_numpy(train_x), torch.from_numpy(train_y[train_keep]),
        torch.from_numpy(val_x), torch.from_numpy(val_y[val_keep]),
        len(classes), root.name, str(root.resolve()), tuple(classes),
    )
