"""An ImageNet subset: an ImageFolder tree (train/ and val/ of class folders) restricted to the
classes of a list file (e.g. ImageNet-100), decoded once at a low resolution and cached as uint8."""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchvision import transforms
from torchvision.datasets import ImageFolder

from repro.data import ImageData, default_root, register
from repro.errors import DataError
from repro.records.atomic import replacing


class ClassListFolder(ImageFolder):
    """ImageFolder over the given classes only, labelled in the list's order."""

    def __init__(self, root: Path, classes: list[str], transform):
        self.listed = classes
        super().__init__(str(root), transform=transform)

    def find_classes(self, directory):
        return self.listed, {c: i for i, c in enumerate(self.listed)}


def read_class_list(path) -> list[str]:
    if path is None:
        raise DataError("data.class_list is not set: give a file with one class folder name "
                        "(e.g. an ImageNet wnid) per line, such as an ImageNet-100 list")
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"data.class_list={str(path)!r} does not exist: point it at a file with "
                        "one class folder name per line")
    classes = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(set(classes)) != len(classes) or not classes:
        raise DataError(f"{path} must list each class once, one per line (found {len(classes)} "
                        f"lines, {len(set(classes))} distinct)")
    return classes


def decode_split(folder: Path, classes: list[str], img_size: int, workers: int):
    missing = [c for c in classes if not (folder / c).is_dir()]
    if missing:
        raise DataError(f"{folder} has no folder for {len(missing)} listed classes, e.g. "
                        f"{missing[:3]}; check data.root and data.class_list")
    resize = transforms.Compose([transforms.Resize(img_size), transforms.CenterCrop(img_size),
                                 transforms.PILToTensor()])
    try:
        dataset = ClassListFolder(folder, classes, resize)
    except FileNotFoundError as err:
        raise DataError(f"{folder}: {err}") from err
    xs, ys = [], []
    try:
        for x, y in DataLoader(dataset, batch_size=256, num_workers=workers):
            xs.append(x)
            ys.append(y)
    except Exception as err:  # PIL raises several kinds on a corrupt image
        raise DataError(f"decoding an image under {folder} failed ({err}); remove or replace "
                        "the corrupt file") from err
    return torch.cat(xs), torch.cat(ys)


def image_root(cfg) -> Path:
    """`data.root`: the folder holding train/ and val/ of class folders."""
    if cfg.get("root") is None:
        raise DataError("data.root is not set: point it at an ImageNet tree with train/ and val/ "
                        "folders of class folders (data.root=/path/to/imagenet)")
    return Path(cfg.root).expanduser()


@register("imagenet_subset")
def load(cfg) -> ImageData:
    root = image_root(cfg)
    classes = read_class_list(cfg.get("class_list"))
    key = hashlib.sha256(f"{root.resolve()}|{classes}|{cfg.img_size}".encode()).hexdigest()[:16]
    cache = Path(cfg.get("cache_dir") or default_root()) / f"imagenet_subset_{key}.pt"
    if cache.is_file():
        return ImageData(**torch.load(cache))
    splits = [decode_split(root / split, classes, cfg.img_size, cfg.get("workers", 4))
              for split in ("train", "val")]
    fields = dict(train_x=splits[0][0], train_y=splits[0][1], test_x=splits[1][0],
                  test_y=splits[1][1], num_classes=len(classes))
    cache.parent.mkdir(parents=True, exist_ok=True)
    with replacing(cache) as tmp:
        torch.save(fields, tmp)
    return ImageData(**fields)
