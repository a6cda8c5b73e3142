"""ImageNet-1K, or any class subset, at full resolution: an ImageFolder tree (train/ and val/ of
class folders) whose files are decoded every epoch in DataLoader workers, with the official
recipe's timm augmentation (repro.data.transforms). Nothing is cached: memory stays flat however
large the set. For small subsets at low resolution, `imagenet_subset` (decoded once, cached as
uint8, augmented batched on the device) is faster.

Before training every file's header is read, in threads (~30 us a file from the page cache: ~40 s
for ImageNet-1K's 1.33M files, more from a cold or network disk): a file that cannot be opened
stops the launch, naming it (data.bad_images=error), or is left out and counted (skip), before
any compute is spent. A file that fails later (truncated past its header) stops the run naming it."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torchvision.datasets.folder import IMG_EXTENSIONS

from repro.data import register
from repro.data.imagenet_subset import image_root, read_class_list
from repro.data.loader import train_eval_indices
from repro.data.transforms import eval_transform, train_transform
from repro.data.workers import ImageFiles, WorkerBatches, WorkerEvalSet, worker_count
from repro.errors import DataError
from repro.records.logger import MESSAGES


def scan(folder: Path, classes: list[str]) -> tuple[list[str], list[int]]:
    """Image paths and labels under `folder`/<class>/, in a fixed (sorted) order."""
    missing = [c for c in classes if not (folder / c).is_dir()]
    if missing:
        raise DataError(f"{folder} has no folder for {len(missing)} of the {len(classes)} classes, e.g. "
                        f"{missing[:3]}; check data.root and data.class_list")
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(str(p) for p in (folder / name).iterdir() if p.suffix.lower() in IMG_EXTENSIONS)
        if not files:
            raise DataError(f"{folder / name} holds no image files ({', '.join(IMG_EXTENSIONS)}); "
                            "remove the class from data.class_list or add its images")
        paths += files
        labels += [label] * len(files)
    return paths, labels


def unreadable(path: str) -> str | None:
    """Why the image file at `path` cannot be opened (its header read), or None."""
    try:
        if os.path.getsize(path) == 0:
            return "an empty file"
        with Image.open(path):
            return None
    except (OSError, ValueError, SyntaxError) as err:
        return str(err)


def readable(paths: list[str], labels: list[int], bad_images: str) -> tuple[list[str], list[int]]:
    """The files among `paths` (with their `labels`) whose headers read; any other refuses the launch
    naming the first (bad_images=error), or is left out with a count (skip)."""
    chunks = [paths[i:i + 1024] for i in range(0, len(paths), 1024)]
    with ThreadPoolExecutor(4 * worker_count(None)) as pool:
        reasons = [r for chunk in pool.map(lambda c: [unreadable(p) for p in c], chunks) for r in chunk]
    bad = [(p, r) for p, r in zip(paths, reasons) if r is not None]
    if not bad:
        return paths, labels
    example = f"{len(bad)} image files cannot be decoded, e.g. {bad[0][0]} ({bad[0][1]})"
    if bad_images == "error":
        raise DataError(f"{example}; remove or replace them, or set data.bad_images=skip to leave them out")
    MESSAGES.warning(f"data.bad_images=skip: left out {example}")
    kept = [k for k, r in enumerate(reasons) if r is None]
    return [paths[k] for k in kept], [labels[k] for k in kept]


@dataclass
class StreamData:
    """File lists of the train and val splits; images are decoded when batches are drawn."""
    train_paths: list[str]
    train_y: torch.Tensor
    test_paths: list[str]
    test_y: torch.Tensor
    num_classes: int
    geometry: tuple[int, int, int]
    mean_std: tuple = (IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)

    def subset(self, keep: torch.Tensor) -> None:
        self.train_paths = [self.train_paths[i] for i in keep.tolist()]
        self.train_y = self.train_y[keep]

    def files(self, split: str, bad_images: str, keep=None) -> ImageFiles:
        paths, y = (self.train_paths, self.train_y) if split == "train" else (self.test_paths, self.test_y)
        keep = range(len(paths)) if keep is None else keep.tolist()
        return ImageFiles([paths[i] for i in keep], [int(y[i]) for i in keep], bad_images)

    def pipeline(self, cfg, device, world) -> tuple:
        """Training batches and evaluation sets (as ImageData.pipeline), decoded in workers."""
        t, d = cfg.train, cfg.data
        train, evaluate = train_transform(d, *self.mean_std), eval_transform(d, *self.mean_std)
        batches = WorkerBatches(self.files("train", d.bad_images), train, t.batch_size, cfg.seed, device,
                                d.workers, t.channels_last, world.rank, world.size)
        probe = train_eval_indices(len(self.train_y), t.train_eval_size)
        sets = {"test": self.files("val", d.bad_images),
                "train_full": self.files("train", d.bad_images, probe)}
        return batches, {name: WorkerEvalSet(images, evaluate, device, d.workers, world.rank, world.size)
                         for name, images in sets.items()}


def all_classes(train: Path) -> list[str]:
    if not train.is_dir():
        raise DataError(f"{train} does not exist: data.root must hold train/ and val/ folders of "
                        "class folders")
    return sorted(p.name for p in train.iterdir() if p.is_dir())


@register("imagenet")
def load(cfg) -> StreamData:
    root = image_root(cfg)
    classes = read_class_list(cfg.class_list) if cfg.get("class_list") else all_classes(root / "train")
    if len(classes) != cfg.num_classes:
        source = "data.class_list" if cfg.get("class_list") else str(root / "train")
        raise DataError(f"{len(classes)} classes in {source} but data.num_classes={cfg.num_classes}; "
                        f"set data.num_classes={len(classes)}")
    (train_paths, train_y), (test_paths, test_y) = (readable(*scan(root / s, classes), cfg.bad_images)
                                                    for s in ("train", "val"))
    return StreamData(train_paths, torch.tensor(train_y), test_paths, torch.tensor(test_y), len(classes),
                      (cfg.in_chans, cfg.img_size, cfg.img_size))
