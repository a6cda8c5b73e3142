import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from writers import write_cifar, write_fashion_mnist, write_idx, write_image_folder

from repro.data import load_data
from repro.data.fashion_mnist import read_idx
from repro.data.loader import Normalize, TrainBatches, random_crop, random_hflip
from repro.errors import DataError

COMMON = dict(crop_padding=0, hflip=False, mixup=0.0, cutmix=0.0, label_smoothing=0.0,
              train_subset=None, subset_seed=0)


def cfg(**kw):
    return OmegaConf.create({**COMMON, **kw})


def test_idx_roundtrip_raw_and_gzip(tmp_path):
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a.idx", "a.idx.gz"):
        write_idx(tmp_path / name, a)
        assert np.array_equal(read_idx(tmp_path / name), a)


def test_truncated_idx_is_reported(tmp_path):
    write_idx(tmp_path / "x", np.zeros((5, 28, 28), np.uint8))
    raw = (tmp_path / "x").read_bytes()
    (tmp_path / "x").write_bytes(raw[:-10])
    with pytest.raises(DataError, match="truncated or corrupt.*Fetch it again"):
        read_idx(tmp_path / "x")
    (tmp_path / "y").write_bytes(b"not an idx file at all")
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(tmp_path / "y")


def test_fashion_mnist_from_root(tmp_path):
    arrays = write_fashion_mnist(tmp_path)
    data = load_data(cfg(name="fashion_mnist", root=str(tmp_path)))
    assert data.train_x.shape == (64, 1, 28, 28) and data.train_x.dtype == torch.uint8
    assert np.array_equal(data.train_x[:, 0].numpy(), arrays["train"][0])
    assert np.array_equal(data.test_y.numpy(), arrays["t10k"][1])
    assert data.num_classes == 10


def test_fashion_mnist_missing_file_says_how_to_get_it(tmp_path):
    write_fashion_mnist(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataError, match="t10k-images.*dataset-fashion-mnist"):
        load_data(cfg(name="fashion_mnist", root=str(tmp_path)))


def test_corrupt_gzip_is_reported(tmp_path):
    write_fashion_mnist(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="train-images"):
        load_data(cfg(name="fashion_mnist", root=str(tmp_path)))


@pytest.mark.parametrize("variant, classes", [("cifar10", 10), ("cifar100", 100)])
def test_cifar_pickles(tmp_path, variant, classes):
    written = write_cifar(tmp_path, variant)
    data = load_data(cfg(name=variant, root=str(tmp_path), download=False))
    train_names = [n for n in written if "test" not in n]
    assert data.train_x.shape == (20 * len(train_names), 3, 32, 32)
    first, labels = written[train_names[0]]
    # Row layout: 1024 red, then green, then blue values, each row-major 32 x 32.
    assert np.array_equal(data.train_x[0, 1].numpy().ravel(), first[0, 1024:2048])
    assert data.train_y[:20].tolist() == labels
    assert data.num_classes == classes and len(data.test_y) == 20


def test_cifar_missing_without_download_explains(tmp_path):
    with pytest.raises(DataError, match="download=true"):
        load_data(cfg(name="cifar10", root=str(tmp_path), download=False))


def test_cifar_corrupt_pickle(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x04garbage")
    with pytest.raises(DataError, match="data_batch_3.*download"):
        load_data(cfg(name="cifar10", root=str(tmp_path), download=False))


def test_imagenet_subset_keeps_listed_classes_in_list_order(tmp_path):
    write_image_folder(tmp_path / "in", ["n03", "n01", "n02"])
    (tmp_path / "classes.txt").write_text("n02\nn03\n")
    data = load_data(cfg(name="imagenet_subset", root=str(tmp_path / "in"), img_size=16,
                         class_list=str(tmp_path / "classes.txt"), cache_dir=str(tmp_path),
                         workers=0))
    assert data.train_x.shape == (6, 3, 16, 16) and data.num_classes == 2
    assert data.train_y.tolist() == [0, 0, 0, 1, 1, 1]      # n02 -> 0, n03 -> 1
    again = load_data(cfg(name="imagenet_subset", root=str(tmp_path / "in"), img_size=16,
                          class_list=str(tmp_path / "classes.txt"), cache_dir=str(tmp_path)))
    assert torch.equal(again.train_x, data.train_x)         # served from the cache


def test_imagenet_subset_missing_class(tmp_path):
    write_image_folder(tmp_path / "in", ["n01"])
    (tmp_path / "classes.txt").write_text("n01\nn09\n")
    with pytest.raises(DataError, match="n09"):
        load_data(cfg(name="imagenet_subset", root=str(tmp_path / "in"), img_size=16,
                      class_list=str(tmp_path / "classes.txt"), cache_dir=str(tmp_path), workers=0))


def test_random_crop_matches_per_image_brute_force():
    x = torch.randint(0, 256, (16, 3, 8, 8), dtype=torch.uint8)
    out = random_crop(x, 2, torch.Generator().manual_seed(1))
    oy, ox = torch.randint(0, 5, (2, 16), generator=torch.Generator().manual_seed(1))
    padded = torch.zeros(16, 3, 12, 12, dtype=torch.uint8)
    padded[:, :, 2:10, 2:10] = x
    for i in range(16):
        assert torch.equal(out[i], padded[i, :, oy[i]:oy[i] + 8, ox[i]:ox[i] + 8])


def test_random_hflip_flips_about_half_exactly():
    x = torch.arange(64 * 4, dtype=torch.uint8).view(64, 1, 1, 4).expand(64, 1, 2, 4).contiguous()
    out = random_hflip(x, torch.Generator().manual_seed(0))
    flipped = [torch.equal(out[i], x[i].flip(-1)) for i in range(64)]
    assert all(f or torch.equal(out[i], x[i]) for i, f in enumerate(flipped))
    assert 20 < sum(flipped) < 44


def batches(seed=3):
    x = torch.arange(100, dtype=torch.uint8).view(100, 1, 1, 1).expand(100, 1, 4, 4).contiguous()
    return TrainBatches(x, torch.arange(100), 16, Normalize(torch.zeros(1), torch.ones(1) / 255, "cpu"),
                        seed, crop_padding=1, hflip=True)


def test_epoch_is_a_permutation_and_resumable_mid_epoch():
    b = batches()
    full = list(b.epoch(2))
    assert len(full) == 6                                   # 100 // 16, last partial dropped
    seen = torch.cat([y for _, y in full])
    assert len(set(seen.tolist())) == 96
    tail = list(b.epoch(2, start=4))
    assert all(torch.equal(a[0], c[0]) and torch.equal(a[1], c[1]) for a, c in zip(full[4:], tail))
    other = torch.cat([y for _, y in batches().epoch(3)])
    assert not torch.equal(seen, other)                     # a new order each epoch


def test_train_subset_is_fixed_and_sized():
    c = OmegaConf.create(dict(name="synthetic", num_train=100, num_test=10, img_size=8, in_chans=1,
                              num_classes=3, **{**COMMON, "train_subset": 30}))
    a, b = load_data(c), load_data(c)
    assert len(a.train_y) == 30 and torch.equal(a.train_x, b.train_x)


def test_data_moved_to_a_device_keeps_the_host_statistics():
    c = OmegaConf.create(dict(name="synthetic", num_train=50, num_test=10, img_size=8, in_chans=3,
                              num_classes=3, **COMMON))
    data = load_data(c)
    x = data.train_x.double() / 255                       # brute force, in float64
    mean, std = data.mean_std
    assert torch.allclose(mean.double(), x.mean(dim=(0, 2, 3)), atol=1e-6)
    assert torch.allclose(std.double(), x.std(dim=(0, 2, 3)), atol=1e-6)
    assert data.mean_std is data.mean_std                 # computed once
    moved = data.to("meta")                               # no memory, no data: the stats must carry
    assert moved.train_x.device.type == "meta" and moved.test_y.shape == data.test_y.shape
    assert moved.mean_std is data.mean_std and moved.num_classes == 3


def test_synthetic_images_made_in_chunks_equal_one_draw():
    # The one-call formula, as first written: prototypes, labels, then all the noise at once.
    c = OmegaConf.create(dict(name="synthetic", num_train=2500, num_test=30, img_size=5, in_chans=3,
                              num_classes=4, seed=7, noise=40.0, **COMMON))
    gen = torch.Generator().manual_seed(7)
    prototypes = torch.rand((4, 3, 5, 5), generator=gen) * 255
    y = torch.randint(4, (2500,), generator=gen)
    x = (prototypes[y] + torch.randn((2500, 3, 5, 5), generator=gen) * 40.0).clamp(0, 255).to(torch.uint8)
    data = load_data(c)
    assert torch.equal(data.train_y, y) and torch.equal(data.train_x, x)
