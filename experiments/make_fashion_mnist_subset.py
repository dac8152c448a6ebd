"""Make the Fashion-MNIST subset that ships inside gensynth (gensynth/data/fashion_mnist/).

A class-balanced, seeded subset of Debian's `dataset-fashion-mnist` (Zalando's
Fashion-MNIST, MIT/Expat licence): 600 images per class from the training
split and 100 per class from the test split, written back as gzipped IDX files
so that the same reader serves the full and the embedded dataset.

    apt-get install dataset-fashion-mnist
    python experiments/make_fashion_mnist_subset.py
"""
import gzip
import struct
from pathlib import Path

import numpy as np

from gensynth.data.idx import read_idx
from gensynth.data.proxy import balanced_indices

SOURCE = Path("/usr/share/datasets/fashion-mnist")
TARGET = Path(__file__).resolve().parent.parent / "gensynth" / "data" / "fashion_mnist"
PER_CLASS = {"train": 600, "t10k": 100}
SEED = 0


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX: magic (0, 0, dtype 0x08 = uint8, ndim), big-endian dims, raw bytes; gzipped with mtime 0."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


if __name__ == "__main__":
    TARGET.mkdir(parents=True, exist_ok=True)
    for split, per_class in PER_CLASS.items():
        images = read_idx(SOURCE / f"{split}-images-idx3-ubyte.gz")
        labels = read_idx(SOURCE / f"{split}-labels-idx1-ubyte.gz")
        keep = np.sort(balanced_indices(labels, per_class * 10, SEED))
        write_idx(TARGET / f"{split}-images-idx3-ubyte.gz", images[keep])
        write_idx(TARGET / f"{split}-labels-idx1-ubyte.gz", labels[keep])
        print(f"{split}: {len(keep)} images, classes {np.bincount(labels[keep]).tolist()}")
