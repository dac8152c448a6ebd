"""Resolve a dataset spec to a loader, detecting the format from the folder's contents.

Loaded datasets are cached in-process, so a search evaluating many candidates decodes once.
"""
from __future__ import annotations

import os
from functools import lru_cache, partial
from pathlib import Path
from typing import Callable

from ..errors import UserError
from .cifar import is_cifar_folder, load_cifar_folder
from .idx import STEMS, find_idx_files, load_idx_folder
from .image_folder import load_image_folder, subfolders
from .proxy import ProxyDataset

FASHION_MNIST = "fashion-mnist"
FASHION_MNIST_FULL = "fashion-mnist-full"
EMBEDDED_DIR = Path(__file__).resolve().parent / "fashion_mnist"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_ENV = "GENSYNTH_FASHION_MNIST"
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
EXPECTED = (
    "expected 'fashion-mnist', 'fashion-mnist-full', an ImageFolder directory, a CIFAR-10 python-batches directory"
    " or a directory of IDX files"
)

LOADERS: dict[str, Callable[..., ProxyDataset]] = {
    FASHION_MNIST: partial(load_idx_folder, name=FASHION_MNIST, class_names=FASHION_MNIST_CLASSES),
    FASHION_MNIST_FULL: partial(load_idx_folder, name=FASHION_MNIST_FULL, class_names=FASHION_MNIST_CLASSES),
    "idx": load_idx_folder,
    "cifar-10": load_cifar_folder,
    "image-folder": load_image_folder,
}


def load_dataset(
    spec: str = FASHION_MNIST, *, train_limit: int | None = None, val_limit: int | None = None, seed: int = 0
) -> ProxyDataset:
    """Load ``spec`` ('fashion-mnist' or a dataset folder), keeping at most the given numbers of images.

    Limits pick a class-balanced subset determined by ``seed``. The result is cached
    and shared: treat it as read-only.
    """
    if spec == FASHION_MNIST:
        return _load(FASHION_MNIST, str(EMBEDDED_DIR), train_limit, val_limit, seed)
    if spec == FASHION_MNIST_FULL:
        return _load(FASHION_MNIST_FULL, str(fashion_mnist_dir()), train_limit, val_limit, seed)
    path = Path(os.path.abspath(Path(spec).expanduser()))
    return _load(detect_format(spec, path), str(path), train_limit, val_limit, seed)


def fashion_mnist_dir() -> Path:
    """The Fashion-MNIST folder: ``$GENSYNTH_FASHION_MNIST`` or Debian's install location."""
    override = os.environ.get(FASHION_MNIST_ENV)
    folder = Path(override).expanduser() if override else FASHION_MNIST_DIR
    if find_idx_files(folder) is None:
        files = ", ".join(f"{stem}[.gz]" for stem in STEMS)
        if override:
            raise UserError(f"dataset '{FASHION_MNIST_FULL}': {FASHION_MNIST_ENV}='{override}' does not hold {files}")
        raise UserError(
            f"dataset '{FASHION_MNIST_FULL}': not found in {folder} "
            f"(run 'apt-get install dataset-fashion-mnist' or set {FASHION_MNIST_ENV} to a folder with {files})"
        )
    return folder


def detect_format(spec: str, path: Path) -> str:
    """The :data:`LOADERS` key for the dataset folder ``path`` (given by the user as ``spec``)."""
    if not path.exists():
        raise UserError(f"dataset '{spec}': no such file or directory ({EXPECTED})")
    if not path.is_dir():
        raise UserError(f"dataset '{spec}': not a directory ({EXPECTED})")
    if is_cifar_folder(path):
        return "cifar-10"
    if find_idx_files(path) is not None:
        return "idx"
    if subfolders(path):
        return "image-folder"
    if not any(path.iterdir()):
        raise UserError(f"dataset '{spec}': empty directory ({EXPECTED})")
    raise UserError(f"dataset '{spec}': no class folders, CIFAR-10 batches or IDX files found ({EXPECTED})")


@lru_cache(maxsize=8)
def _load(kind: str, folder: str, train_limit: int | None, val_limit: int | None, seed: int) -> ProxyDataset:
    return LOADERS[kind](Path(folder), train_limit=train_limit, val_limit=val_limit, seed=seed)
