"""Fashion-MNIST from its four IDX files: `data.root`, else Debian's dataset-fashion-mnist,
else the official download (checksums verified), else an error that says how to get it."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from torchvision.datasets import FashionMNIST
from torchvision.datasets.utils import download_url

from repro.data import ImageData, default_root, register
from repro.errors import DataError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
STEMS = [stem for pair in SPLITS.values() for stem in pair]
HOW_TO_GET = ("Install Debian's package (apt-get install dataset-fashion-mnist), or put the four "
              "IDX files (.gz or raw) in one folder and pass data.root=FOLDER")


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (gzip or raw), checking its header against its size."""
    try:
        raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read {path}: {err}. The file is corrupt: fetch it again. "
                        + HOW_TO_GET) from err
    if len(raw) < 4 or raw[:3] != b"\x00\x00\x08" or not 1 <= raw[3] <= 4:
        raise DataError(f"{path} is not an IDX file of unsigned bytes (header {raw[:4].hex()}); "
                        + HOW_TO_GET)
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    body = raw[4 + 4 * ndim:]
    if len(body) != int(np.prod(dims)):
        raise DataError(f"{path} is truncated or corrupt: its header promises shape {dims} "
                        f"({int(np.prod(dims))} bytes) but it holds {len(body)}. Fetch it again.")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def find_file(folder: Path, stem: str) -> Path | None:
    return next((p for p in (folder / f"{stem}.gz", folder / stem) if p.is_file()), None)


def locate(root) -> Path:
    """The folder holding the four files, downloading them if no local copy exists."""
    if root is not None:
        folder = Path(root).expanduser()
        missing = [s for s in STEMS if find_file(folder, s) is None]
        if missing:
            raise DataError(f"data.root={str(root)!r} lacks {missing} (.gz or raw). " + HOW_TO_GET)
        return folder
    for folder in (DEBIAN_DIR, default_root() / "fashion-mnist"):
        if all(find_file(folder, s) for s in STEMS):
            return folder
    folder = default_root() / "fashion-mnist"
    try:
        for filename, md5 in FashionMNIST.resources:
            download_url(FashionMNIST.mirrors[0] + filename, folder, filename, md5)
    except Exception as err:  # any network or checksum failure ends in the same advice
        raise DataError(f"Fashion-MNIST is not installed and downloading it failed ({err}). "
                        + HOW_TO_GET) from err
    return folder


@register("fashion_mnist")
def load(cfg) -> ImageData:
    folder = locate(cfg.get("root"))
    arrays = {}
    for split, (images, labels) in SPLITS.items():
        x, y = read_idx(find_file(folder, images)), read_idx(find_file(folder, labels))
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise DataError(f"{folder}: {images} has shape {x.shape} but {labels} has {y.shape}; "
                            "expected N x H x W images and N labels. Fetch the files again.")
        arrays[split] = (torch.from_numpy(x.copy()).unsqueeze(1), torch.from_numpy(y.astype(np.int64)))
    return ImageData(*arrays["train"], *arrays["test"], num_classes=10)
