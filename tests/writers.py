"""Writers of tiny data sets in the real on-disk formats the loaders read."""
from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
from PIL import Image


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX: 0x0000, type 0x08 (ubyte), ndim, big-endian dims, then the bytes."""
    header = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def write_fashion_mnist(folder: Path, n_train=64, n_test=32, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        y = rng.integers(0, 10, n, dtype=np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", x)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", y)     # one raw file: both are read
        arrays[prefix] = (x, y)
    return arrays


def write_cifar(root: Path, variant="cifar10", per_batch=20, seed=0) -> dict:
    """torchvision's python-pickle layout: N x 3072 channel-major uint8 rows plus labels."""
    rng = np.random.default_rng(seed)
    if variant == "cifar10":
        folder, key, classes = "cifar-10-batches-py", "labels", 10
        train, test = [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]
    else:
        folder, key, classes = "cifar-100-python", "fine_labels", 100
        train, test = ["train"], ["test"]
    (root / folder).mkdir(parents=True, exist_ok=True)
    written = {}
    for name in train + test:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, classes, per_batch).tolist()
        with open(root / folder / name, "wb") as f:
            pickle.dump({"data": data, key: labels, "batch_label": name}, f)
        written[name] = (data, labels)
    return written


def write_image_folder(root: Path, classes: list[str], per_class=3, size=(40, 30)) -> None:
    """train/ and val/ trees of class folders with JPEG and PNG images of varying content."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in classes:
            (root / split / c).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
                ext = "JPEG" if i % 2 == 0 else "png"
                Image.fromarray(pixels).save(root / split / c / f"img{i}.{ext}")
