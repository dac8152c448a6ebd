"""Tests for gensynth.data: IDX parsing, dataset formats, limits, batches and user errors."""
from __future__ import annotations

import gzip
import os
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from gensynth.data import ProxyDataset, balanced_indices, load_dataset, read_idx
from gensynth.data import registry
from gensynth.errors import UserError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")
IDX_CODES = {np.dtype(np.uint8): 0x08, np.dtype(np.int16): 0x0B, np.dtype(np.int32): 0x0C, np.dtype(np.float64): 0x0E}


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file, gzipped when ``path`` ends in .gz."""
    header = bytes([0, 0, IDX_CODES[array.dtype], array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def write_idx_folder(folder: Path, n_train: int = 40, n_val: int = 20, side: int = 6, gz: bool = True) -> Path:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, n in (("train", n_train), ("t10k", n_val)):
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", rng.integers(0, 256, (n, side, side), dtype=np.uint8))
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", (np.arange(n) % 10).astype(np.uint8))
    return folder


def write_png(path: Path, color: int | tuple[int, int, int], size: tuple[int, int] = (8, 8)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L" if isinstance(color, int) else "RGB", size, color).save(path)


def write_cifar(folder: Path, n_per_batch: int = 20, batches: int = 2) -> dict[str, np.ndarray]:
    """CIFAR-10 python batches of random images; returns the arrays written."""
    rng = np.random.default_rng(1)
    folder.mkdir(parents=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, batches + 1)] + ["test_batch"]:
        data = rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8)
        labels = [i % 10 for i in range(n_per_batch)]
        (folder / name).write_bytes(pickle.dumps({b"data": data, b"labels": labels, b"batch_label": name.encode()}))
        written[name] = data
    meta = {b"label_names": [f"class{i}".encode() for i in range(10)], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return written


def synthetic(channels: int = 1, side: int = 12, n_train: int = 50, n_val: int = 30, seed: int = 0) -> ProxyDataset:
    g = torch.Generator().manual_seed(seed)
    return ProxyDataset(
        train_x=torch.randint(0, 256, (n_train, channels, side, side), generator=g, dtype=torch.uint8),
        train_y=torch.arange(n_train) % 5,
        val_x=torch.randint(0, 256, (n_val, channels, side, side), generator=g, dtype=torch.uint8),
        val_y=torch.arange(n_val) % 5,
        num_classes=5,
        name="synthetic",
        source="memory",
    )


def raises_naming(path: Path | str, what: str = ""):
    """pytest.raises for a one-line UserError that names ``path`` (and contains ``what``)."""
    return pytest.raises(UserError, match=rf"^[^\n]*{re.escape(str(path))}[^\n]*{re.escape(what)}[^\n]*$")


# --- IDX ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize(
    "array",
    [
        np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
        np.array([[-300, 7], [1, 32000]], dtype=np.int16),
        np.array([70000, -1, 0], dtype=np.int32),
        np.array([0.5, -2.25, 1e300]),
    ],
    ids=["uint8", "int16", "int32", "float64"],
)
def test_idx_round_trip(tmp_path: Path, array: np.ndarray, suffix: str) -> None:
    got = read_idx(write_idx(tmp_path / f"a.idx{suffix}", array))
    assert got.dtype == array.dtype and got.dtype.isnative
    np.testing.assert_array_equal(got, array)
    got[...] = 0  # writable, not a view of the file's bytes


@pytest.mark.parametrize(
    "corrupt, what",
    [
        (lambda raw: raw[:-1], "truncated IDX data"),
        (lambda raw: raw + b"\0", "trailing bytes"),
        (lambda raw: raw[:6], "truncated IDX header"),
        (lambda raw: b"\x01" + raw[1:], "bad magic number"),
        (lambda raw: raw[:2] + b"\x42" + raw[3:], "bad magic number"),
        (lambda raw: b"", "bad magic number"),
        (lambda raw: gzip.compress(raw)[:-10], "corrupt gzip"),
    ],
    ids=["truncated", "trailing", "short-header", "magic", "dtype", "empty", "bad-gzip"],
)
def test_corrupt_idx_names_file(tmp_path: Path, corrupt, what: str) -> None:
    raw = (write_idx(tmp_path / "ok", np.zeros((3, 2, 2), np.uint8))).read_bytes()
    bad = tmp_path / "bad-images-idx3-ubyte"
    bad.write_bytes(corrupt(raw))
    with raises_naming(bad, what):
        read_idx(bad)


def test_idx_folder_spec_and_truncated_file_in_it(tmp_path: Path) -> None:
    folder = write_idx_folder(tmp_path / "mnist-like", gz=False)
    ds = load_dataset(str(folder), train_limit=None, val_limit=None, seed=0)
    assert ds.train_x.shape == (40, 1, 6, 6) and ds.val_x.shape == (20, 1, 6, 6)
    assert ds.name == "mnist-like" and ds.num_classes == 10

    broken = write_idx_folder(tmp_path / "broken", gz=False)
    images = broken / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-5])
    with raises_naming(images, "truncated"):
        load_dataset(str(broken), train_limit=None, val_limit=None, seed=0)


# --- Fashion-MNIST -----------------------------------------------------------------------------


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist_debian(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(registry.FASHION_MNIST_ENV, raising=False)
    full = load_dataset("fashion-mnist-full", train_limit=None, val_limit=None, seed=0)
    assert full.train_x.shape == (60000, 1, 28, 28) and full.val_x.shape == (10000, 1, 28, 28)
    assert full.train_x.dtype == torch.uint8 and full.train_y.dtype == torch.int64
    assert full.num_classes == 10 and full.class_names[0] == "T-shirt/top" and full.name == "fashion-mnist-full"
    assert torch.bincount(full.val_y).tolist() == [1000] * 10  # the t10k split
    assert load_dataset("fashion-mnist-full", train_limit=None, val_limit=None, seed=0) is full  # cached

    small = load_dataset("fashion-mnist-full", train_limit=1000, val_limit=505, seed=3)
    assert small.train_x.shape == (1000, 1, 28, 28)
    assert torch.bincount(small.train_y).tolist() == [100] * 10
    assert sorted(torch.bincount(small.val_y).tolist()) == [50] * 5 + [51] * 5


def test_fashion_mnist_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = write_idx_folder(tmp_path / "fm", gz=True)
    (folder / "train-labels-idx1-ubyte.gz").rename(folder / "raw-tmp")  # mix raw and gzipped files
    (folder / "train-labels-idx1-ubyte").write_bytes(gzip.decompress((folder / "raw-tmp").read_bytes()))
    monkeypatch.setenv(registry.FASHION_MNIST_ENV, str(folder))
    ds = load_dataset("fashion-mnist-full", train_limit=20, val_limit=None, seed=0)
    assert ds.train_x.shape == (20, 1, 6, 6) and ds.val_x.shape == (20, 1, 6, 6)
    assert torch.bincount(ds.train_y).tolist() == [2] * 10
    assert ds.source == str(folder.resolve()) and ds.name == "fashion-mnist-full"


def test_fashion_mnist_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(registry.FASHION_MNIST_ENV, str(tmp_path))
    with raises_naming(tmp_path, "train-images-idx3-ubyte"):
        load_dataset("fashion-mnist-full", train_limit=None, val_limit=None, seed=0)
    monkeypatch.delenv(registry.FASHION_MNIST_ENV)
    monkeypatch.setattr(registry, "FASHION_MNIST_DIR", tmp_path / "nowhere")
    with raises_naming(tmp_path / "nowhere", "apt-get install dataset-fashion-mnist"):
        load_dataset("fashion-mnist-full", train_limit=None, val_limit=None, seed=0)


# --- ImageFolder -------------------------------------------------------------------------------


def test_image_folder_train_val_layout(tmp_path: Path) -> None:
    colors = {"cat": (255, 0, 0), "dog": (0, 0, 255)}
    for split, n in (("train", 4), ("val", 2)):
        for name, color in colors.items():
            for i in range(n):
                write_png(tmp_path / split / name / f"{i}.png", color, size=(8, 8))
    write_png(tmp_path / "train" / "dog" / "wide.png", (0, 0, 255), size=(16, 8))  # centre-cropped
    (tmp_path / "train" / "cat" / "notes.txt").write_text("ignored")

    ds = load_dataset(str(tmp_path), train_limit=None, val_limit=None, seed=0)
    assert ds.class_names == ("cat", "dog") and ds.num_classes == 2 and ds.name == tmp_path.name
    assert ds.train_x.shape == (9, 3, 8, 8) and ds.val_x.shape == (4, 3, 8, 8)
    assert ds.train_y.tolist() == [0] * 4 + [1] * 5 and ds.val_y.tolist() == [0, 0, 1, 1]
    red = ds.train_x[:, 0].float().mean(dim=(1, 2))
    assert (red[ds.train_y == 0] == 255).all() and (red[ds.train_y == 1] == 0).all()


def test_image_folder_flat_layout_is_seeded_stratified_split(tmp_path: Path) -> None:
    for c, name in enumerate(["b", "a", "c"]):
        for i in range(10):
            write_png(tmp_path / name / f"{i:02d}.png", 20 * c + i, size=(5, 5))

    ds = load_dataset(str(tmp_path), train_limit=None, val_limit=None, seed=0)
    assert ds.class_names == ("a", "b", "c") and ds.train_x.shape == (24, 1, 5, 5)  # grayscale stays 1 channel
    assert torch.bincount(ds.val_y).tolist() == [2, 2, 2]
    pixels = lambda x: set(x[:, 0, 0, 0].tolist())  # noqa: E731 - each image has a unique grey level
    assert pixels(ds.train_x).isdisjoint(pixels(ds.val_x)) and len(pixels(ds.train_x) | pixels(ds.val_x)) == 30

    again = load_dataset(str(tmp_path), train_limit=None, val_limit=None, seed=0)
    other = load_dataset(str(tmp_path), train_limit=None, val_limit=None, seed=1)
    assert torch.equal(again.val_x, ds.val_x) and not torch.equal(other.val_x, ds.val_x)

    limited = load_dataset(str(tmp_path), train_limit=7, val_limit=3, seed=0)
    assert sorted(torch.bincount(limited.train_y).tolist()) == [2, 2, 3] and limited.val_y.tolist() == [0, 1, 2]


# --- CIFAR-10 ----------------------------------------------------------------------------------


def test_cifar_batches(tmp_path: Path) -> None:
    written = write_cifar(tmp_path / "cifar-10-batches-py")
    ds = load_dataset(str(tmp_path / "cifar-10-batches-py"), train_limit=None, val_limit=10, seed=0)
    assert ds.train_x.shape == (40, 3, 32, 32) and ds.val_x.shape == (10, 3, 32, 32)
    assert ds.class_names == tuple(f"class{i}" for i in range(10)) and ds.num_classes == 10
    assert ds.train_y.tolist() == [i % 10 for i in range(20)] * 2
    row = written["data_batch_2"][3]  # CIFAR rows are the R plane, then G, then B
    assert torch.equal(ds.train_x[23], torch.from_numpy(row.reshape(3, 32, 32)))
    assert torch.bincount(ds.val_y).tolist() == [1] * 10


def test_cifar_refuses_pickles_that_run_code(tmp_path: Path) -> None:
    folder = tmp_path / "cifar"
    write_cifar(folder)

    class Exploit:
        def __reduce__(self):
            return os.system, ("echo pwned",)

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Exploit(), b"labels": []}))
    with raises_naming(folder / "test_batch", "posix.system"):
        load_dataset(str(folder), train_limit=None, val_limit=None, seed=0)


# --- balanced_indices --------------------------------------------------------------------------


def test_balanced_indices() -> None:
    labels = np.array([0] * 50 + [1] * 30 + [2] * 3)
    idx = balanced_indices(labels, 20, seed=5)
    assert len(idx) == 20 and (np.diff(idx) > 0).all()
    assert np.bincount(labels[idx]).tolist() == [9, 8, 3]  # class 2 runs out, the others share the rest
    assert np.array_equal(idx, balanced_indices(labels, 20, seed=5))
    assert not np.array_equal(idx, balanced_indices(labels, 20, seed=6))
    assert np.array_equal(balanced_indices(labels, None, seed=0), np.arange(83))
    with pytest.raises(UserError, match="positive"):
        balanced_indices(labels, 0, seed=0)


# --- batches -----------------------------------------------------------------------------------


@pytest.mark.parametrize("native", [1, 3])
@pytest.mark.parametrize("resolution, channels", [(12, 1), (8, 3), (20, 3), (7, 1)])
def test_batches_shape_and_format(native: int, resolution: int, channels: int) -> None:
    ds = synthetic(channels=native)
    seen = 0
    for x, y in ds.batches("val", 8, resolution, channels):
        assert x.shape == (len(y), channels, resolution, resolution) and x.dtype == torch.float32
        assert x.is_contiguous(memory_format=torch.channels_last) and y.dtype == torch.int64
        assert torch.isfinite(x).all()
        seen += len(y)
    assert seen == 30


def test_batches_deterministic_and_shuffled() -> None:
    ds = synthetic()

    def epoch(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs, ys = zip(*ds.batches("train", 16, 12, 1, torch.Generator().manual_seed(seed)))
        return torch.cat(xs), torch.cat(ys)

    (x0, y0), (x1, y1), (x2, _) = epoch(0), epoch(0), epoch(1)
    assert torch.equal(x0, x1) and torch.equal(y0, y1) and not torch.equal(x0, x2)
    assert len(y0) == 48 == 3 * 16 and ds.num_batches("train", 16) == 3  # the incomplete batch is dropped
    assert not torch.equal(y0, ds.train_y[:48])  # shuffled
    val_y = torch.cat([y for _, y in ds.batches("val", 16, 12, 1)])
    assert torch.equal(val_y, ds.val_y) and ds.num_batches("val", 16) == 2  # in order, all of them
    assert ds.num_batches("train", 64) == 1 == len(list(ds.batches("train", 64, 12, 1)))


@pytest.mark.parametrize("native, channels", [(1, 1), (3, 3), (1, 3), (3, 1)])
def test_batches_normalise_with_train_statistics(native: int, channels: int) -> None:
    ds = synthetic(channels=native, n_train=64)
    ds.train_x[:, 0] //= 2  # give channels different statistics

    def adapt(x: torch.Tensor) -> torch.Tensor:
        x = x.double() / 255
        return x.mean(dim=1, keepdim=True) if x.shape[1] == 3 and channels == 1 else x.expand(-1, channels, -1, -1)

    train = adapt(ds.train_x)
    mean, std = train.mean(dim=(0, 2, 3), keepdim=True), train.std(dim=(0, 2, 3), keepdim=True, correction=0)
    x = torch.cat([x for x, _ in ds.batches("train", 16, 12, channels, torch.Generator().manual_seed(0))])
    torch.testing.assert_close(x.mean(dim=(0, 2, 3)), torch.zeros(channels), atol=1e-4, rtol=0)
    torch.testing.assert_close(x.std(dim=(0, 2, 3), correction=0), torch.ones(channels), atol=1e-4, rtol=0)
    val = torch.cat([x for x, _ in ds.batches("val", 16, 12, channels)])
    torch.testing.assert_close(val, ((adapt(ds.val_x) - mean) / std).float(), atol=1e-4, rtol=1e-4)


def test_batches_rejects_unsupported_channels() -> None:
    with pytest.raises(UserError, match="cannot adapt 3-channel images to 2 channels"):
        next(synthetic(channels=3).batches("val", 4, 8, 2))


def test_proxy_dataset_validates_tensors() -> None:
    ds = synthetic()
    with pytest.raises(ValueError, match="uint8"):
        ProxyDataset(ds.train_x.float(), ds.train_y, ds.val_x, ds.val_y, 5, "x", "y")
    with pytest.raises(ValueError, match="labels outside"):
        ProxyDataset(ds.train_x, ds.train_y + 1, ds.val_x, ds.val_y, 5, "x", "y")


# --- user errors -------------------------------------------------------------------------------


def test_error_nonexistent_path(tmp_path: Path) -> None:
    missing = tmp_path / "foo" / "bar"
    with raises_naming(missing, "no such file or directory (expected 'fashion-mnist', 'fashion-mnist-full', an ImageFolder directory"):
        load_dataset(str(missing), train_limit=None, val_limit=None, seed=0)


def test_error_empty_folder(tmp_path: Path) -> None:
    with raises_naming(tmp_path, "empty directory"):
        load_dataset(str(tmp_path), train_limit=None, val_limit=None, seed=0)


def test_error_file_instead_of_folder(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("1,2\n")
    with raises_naming(tmp_path / "data.csv", "not a directory"):
        load_dataset(str(tmp_path / "data.csv"), train_limit=None, val_limit=None, seed=0)
    with raises_naming(tmp_path, "no class folders, CIFAR-10 batches or IDX files"):
        load_dataset(str(tmp_path), train_limit=None, val_limit=None, seed=0)


def test_error_one_class_folder(tmp_path: Path) -> None:
    write_png(tmp_path / "only" / "0.png", 3)
    with raises_naming(tmp_path, "ImageFolder needs at least 2 class folders, found 1"):
        load_dataset(str(tmp_path), train_limit=None, val_limit=None, seed=0)


def test_error_class_folder_without_images(tmp_path: Path) -> None:
    write_png(tmp_path / "a" / "0.png", 3)
    (tmp_path / "b").mkdir()
    with raises_naming(tmp_path, "class folder 'b' has no images"):
        load_dataset(str(tmp_path), train_limit=None, val_limit=None, seed=0)


def test_error_unreadable_image(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_png(tmp_path / name / "0.png", 3)
        write_png(tmp_path / name / "1.png", 3)
    (tmp_path / "b" / "1.png").write_bytes(b"not a png")
    with raises_naming(tmp_path / "b" / "1.png", "not a readable image"):
        load_dataset(str(tmp_path), train_limit=None, val_limit=None, seed=0)


def test_error_train_without_val(tmp_path: Path) -> None:
    for name in ("a", "b"):
        write_png(tmp_path / "train" / name / "0.png", 3)
    with raises_naming(tmp_path, "no val/ folder"):
        load_dataset(str(tmp_path), train_limit=None, val_limit=None, seed=0)


def test_error_cifar_missing_test_batch(tmp_path: Path) -> None:
    write_cifar(tmp_path / "c")
    (tmp_path / "c" / "test_batch").unlink()
    with raises_naming(tmp_path / "c", "needs data_batch_1..5 and test_batch"):
        load_dataset(str(tmp_path / "c"), train_limit=None, val_limit=None, seed=0)


def test_embedded_fashion_mnist_subset_is_balanced_and_needs_no_install(monkeypatch):
    monkeypatch.setattr(registry, "FASHION_MNIST_DIR", Path("/nowhere"))
    ds = load_dataset("fashion-mnist", train_limit=None, val_limit=None, seed=0)
    assert ds.train_x.shape == (6000, 1, 28, 28) and ds.val_x.shape == (1000, 1, 28, 28)
    assert torch.bincount(ds.train_y).tolist() == [600] * 10
    assert torch.bincount(ds.val_y).tolist() == [100] * 10
    assert ds.source == str(registry.EMBEDDED_DIR)
