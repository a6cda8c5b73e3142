"""CIFAR-10 / CIFAR-100 in the python-pickle format torchvision downloads.

File names, URL and archive checksum come from torchvision's dataset classes; the pickles are read
here (torchvision would insist on the official per-file checksums, which test fixtures lack).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import CIFAR10, CIFAR100
from torchvision.datasets.utils import download_and_extract_archive

from repro.data import ImageData, default_root, register
from repro.errors import DataError

VARIANTS = {"cifar10": (CIFAR10, 10), "cifar100": (CIFAR100, 100)}


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch: a dict with 'data' (N x 3072 uint8, channel-major) and labels."""
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        x = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        y = np.asarray(entry["labels"] if "labels" in entry else entry["fine_labels"])
    except Exception as err:  # unpickling garbage raises many kinds of error
        raise DataError(f"{path} is not a readable CIFAR batch ({type(err).__name__}: {err}); "
                        "delete it and download the archive again") from err
    if len(x) != len(y):
        raise DataError(f"{path} holds {len(x)} images but {len(y)} labels: the file is corrupt")
    return x, y


def locate(cls, root, download: bool) -> Path:
    base = Path(root).expanduser() if root is not None else default_root()
    folder = base / cls.base_folder
    names = [name for name, _ in cls.train_list + cls.test_list]
    if all((folder / n).is_file() for n in names):
        return folder
    if not download:
        raise DataError(f"{folder} lacks some of {names}; set data.download=true, or extract "
                        f"{cls.filename} ({cls.url}) into data.root={str(base)!r}")
    try:
        download_and_extract_archive(cls.url, str(base), filename=cls.filename, md5=cls.tgz_md5)
    except Exception as err:
        raise DataError(f"downloading {cls.url} into {base} failed ({err}); without network, "
                        f"extract {cls.filename} there by hand or set data.root") from err
    return folder


def load_variant(cfg) -> ImageData:
    cls, num_classes = VARIANTS[cfg.name]
    folder = locate(cls, cfg.get("root"), cfg.get("download", True))
    splits = []
    for names in (cls.train_list, cls.test_list):
        parts = [read_batch(folder / name) for name, _ in names]
        splits += [torch.from_numpy(np.concatenate([x for x, _ in parts])),
                   torch.from_numpy(np.concatenate([y for _, y in parts]).astype(np.int64))]
    return ImageData(*splits, num_classes=num_classes)


for _name in VARIANTS:
    register(_name)(load_variant)
