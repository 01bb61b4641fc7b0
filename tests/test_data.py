"""The data sets: splits, means, resumable and sharded batches, augmentation, file formats and their errors."""

from __future__ import annotations

import gzip
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import FashionMNIST

from verydeep.data import DATASETS, load_data, synthetic
from verydeep.data.augment import (
    IMAGENET_EIGVAL,
    IMAGENET_EIGVEC,
    crop_flip,
    pca_lighting,
    random_crop_flip,
    random_rescale_crop_flip,
    rescale_crop_flip,
)
from verydeep.data.memory import TensorData, TensorImages


def labelled_by_index(n: int) -> TensorData:
    """Data whose label is each image's index, so a batch says which samples it holds."""
    images = torch.arange(n * 16, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(n, 1, 4, 4)
    splits = {split: TensorImages(images, torch.arange(n), torch.arange(n)) for split in ("train", "val", "test")}
    return TensorData("indexed", [str(i) for i in range(n)], splits, "pixel", source="test")


def epoch(data, split="train", batch_size=32, **options) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return list(data.batches(split, batch_size, **options))


# Fashion-MNIST, the default data set


@pytest.mark.fashion_mnist
def test_fashion_mnist_has_the_official_sizes_and_a_fixed_held_out_split():
    data = load_data("fashion-mnist")
    assert data.sizes == {"train": 55_000, "val": 5_000, "test": 10_000}
    assert data.classes == FashionMNIST.classes and data.num_classes == 10
    assert (data.in_channels, data.image_size, data.in_memory) == (1, 28, True)
    assert data.images("train")[0][0].shape == (1, 28, 28)
    train, val = data.images("train").index, data.images("val").index
    assert not set(train.tolist()) & set(val.tolist())
    assert len(set(train.tolist()) | set(val.tolist())) == 60_000
    assert torch.equal(load_data("fashion-mnist").images("val").index, val)
    assert not torch.equal(load_data("fashion-mnist", split_seed=1).images("val").index, val)
    assert load_data("fashion-mnist", val_size=0).sizes == {"train": 60_000, "val": 0, "test": 10_000}


@pytest.mark.fashion_mnist
def test_subset_trains_on_n_images_outside_the_full_val_split():
    full_val = set(load_data("fashion-mnist").images("val").index.tolist())
    data = load_data("fashion-mnist", subset=1000)
    assert data.sizes == {"train": 1000, "val": 100, "test": 10_000}
    assert set(data.images("val").index.tolist()) <= full_val
    assert not set(data.images("train").index.tolist()) & full_val


@pytest.mark.fashion_mnist
def test_means_are_the_training_images_means():
    pixel, rgb = load_data("fashion-mnist", subset=2000), load_data("fashion-mnist", subset=2000, mean="rgb")
    images = pixel.images("train").images.double() / 255
    assert pixel.mean.shape == (1, 28, 28) and pixel.mean.dtype == torch.float32
    assert rgb.mean.shape == (1, 1, 1)
    torch.testing.assert_close(pixel.mean, images.mean(0).float())
    torch.testing.assert_close(rgb.mean, images.mean((0, 2, 3))[:, None, None].float())


@pytest.mark.fashion_mnist
def test_eval_batches_are_the_images_in_order_minus_the_mean():
    data = load_data("fashion-mnist", subset=1000)
    x, y = next(iter(data.batches("val", 64, channels_last=True)))
    val = data.images("val")
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (64, 1, 28, 28)
    assert x.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(x, val.images[:64].float() / 255 - data.mean)
    assert torch.equal(y, val.labels[:64])
    assert data.num_batches("val", 64) == 2 and len(epoch(data, "val", 64)) == 2


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    """The IDX format: zero, zero, 0x08 (uint8), the number of dims; big-endian int32 dims; the bytes."""
    content = bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape) + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if compress:
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(content))
    else:
        path.write_bytes(content)


@pytest.mark.parametrize("layout", ["FashionMNIST/raw", "plain", "gz"])
def test_fashion_mnist_reads_plain_gzipped_and_torchvision_layouts(tmp_path, layout):
    folder = tmp_path / ("FashionMNIST/raw" if layout == "FashionMNIST/raw" else "files")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 20)):
        write_idx(
            folder / f"{prefix}-images-idx3-ubyte", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), layout == "gz"
        )
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", rng.integers(0, 10, n, dtype=np.uint8), layout == "gz")
    data = load_data("fashion-mnist", tmp_path if layout == "FashionMNIST/raw" else folder, val_size=5)
    assert data.sizes == {"train": 25, "val": 5, "test": 20} and data.mean.shape == (1, 28, 28)
    assert load_data(str(folder), val_size=5).name == "fashion-mnist"


# the batch plan: resumable, shuffled by epoch, sharded across ranks


def test_a_resumed_epoch_sees_the_batches_of_an_uninterrupted_one():
    data = load_data("synthetic", subset=330)
    full = epoch(data, batch_size=16, epoch=3, seed=7)
    resumed = epoch(data, batch_size=16, epoch=3, seed=7, start=5)
    assert len(full) == data.num_batches("train", 16) == 20 and len(resumed) == 15
    for (x, y), (x_resumed, y_resumed) in zip(full[5:], resumed):
        assert torch.equal(x, x_resumed) and torch.equal(y, y_resumed)
    x, _ = next(data.batches("train", 16, epoch=3, seed=7, start=5, channels_last=True))
    assert torch.equal(x, full[5][0]) and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def test_each_epoch_has_its_own_order_and_the_training_rng_is_left_alone():
    data = labelled_by_index(100)
    state = torch.get_rng_state()
    orders = [torch.cat([y for _, y in epoch(data, batch_size=10, epoch=e)]) for e in (0, 1, 0)]
    assert torch.equal(orders[0], orders[2]) and not torch.equal(orders[0], orders[1])
    assert sorted(orders[1].tolist()) == list(range(100))
    assert torch.equal(torch.get_rng_state(), state)


def test_ranks_get_disjoint_shards_that_cover_the_epoch():
    data = labelled_by_index(100)
    for drop_last, covered in ((True, 96), (False, 100)):
        ranks = [
            torch.cat([y for _, y in epoch(data, batch_size=8, rank=r, world_size=2, drop_last=drop_last)])
            for r in (0, 1)
        ]
        assert not set(ranks[0].tolist()) & set(ranks[1].tolist())
        assert len(ranks[0]) + len(ranks[1]) == covered
    # the ranks' batches together are the single process's batches of twice the size
    single = epoch(data, batch_size=16, epoch=1)
    pairs = zip(
        epoch(data, batch_size=8, epoch=1, world_size=2), epoch(data, batch_size=8, epoch=1, rank=1, world_size=2)
    )
    for (_, y), ((_, y0), (_, y1)) in zip(single, pairs):
        assert sorted(y.tolist()) == sorted(y0.tolist() + y1.tolist())
    assert data.num_batches("train", 8, world_size=2) == 6


def test_bad_batch_arguments_are_errors():
    data = labelled_by_index(10)
    with pytest.raises(ValueError, match="unknown split"):
        data.batches("valid", 4)
    with pytest.raises(ValueError, match="rank"):
        data.batches("train", 4, rank=2, world_size=2)


# augmentation


def test_crop_flip_cuts_the_expected_window():
    images = torch.arange(2 * 3 * 5 * 6, dtype=torch.int64).reshape(2, 3, 5, 6).to(torch.uint8)
    out = crop_flip(
        images, top=torch.tensor([0, 3]), left=torch.tensor([2, 1]), flip=torch.tensor([False, True]), padding=2
    )
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    assert torch.equal(out[0], padded[0, :, 0:5, 2:8])
    assert torch.equal(out[1], padded[1, :, 3:8, 1:7].flip(-1))


def test_random_crop_flip_only_moves_pixels():
    images = torch.randint(0, 256, (200, 3, 8, 8), dtype=torch.uint8)
    out = random_crop_flip(images, torch.Generator().manual_seed(0), padding=4)
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    windows = padded.unfold(2, 8, 1).unfold(3, 8, 1)  # (B, C, 9, 9, 8, 8): every crop of the padded image
    windows = torch.stack([windows, windows.flip(-1)], 2).permute(0, 2, 3, 4, 1, 5, 6).flatten(1, 3)
    matches = (windows == out[:, None]).flatten(2).all(-1)
    assert matches.any(1).all()
    flipped = matches[:, 81:].any(1) & ~matches[:, :81].any(1)
    assert 60 < flipped.sum() < 140


def test_rescale_crop_flip_is_a_resize_then_a_crop_and_a_mirror():
    images = torch.rand(4, 3, 8, 8)
    sides, top, left = torch.tensor([8, 9, 13, 16]), torch.tensor([0, 1, 5, 8]), torch.tensor([0, 0, 2, 7])
    flip = torch.tensor([False, True, False, True])
    out = rescale_crop_flip(images, sides, top, left, flip)
    for b in range(4):
        s, t, left_b = int(sides[b]), int(top[b]), int(left[b])
        resized = torch.nn.functional.interpolate(images[b : b + 1], size=(s, s), mode="bilinear")[0]
        window = resized[:, t : t + 8, left_b : left_b + 8]
        torch.testing.assert_close(out[b], window.flip(-1) if flip[b] else window, atol=1e-5, rtol=0)


def ramp(n: int, size: int = 8) -> torch.Tensor:
    """Images whose pixels are their column numbers: a rescaled image's slope is size / S, its sign the mirror."""
    return torch.arange(size, dtype=torch.float32).expand(n, 1, size, size).clone()


def test_scale_jittering_draws_every_side_of_its_range_and_mirrors_half():
    out = random_rescale_crop_flip(ramp(400), torch.Generator().manual_seed(0), (8, 16))
    slope = out[:, 0, :, 3] - out[:, 0, :, 2]  # interior columns: no clamping at the image's edge
    assert torch.allclose(slope, slope[:, :1].expand_as(slope), atol=1e-5)  # one scale across the crop's rows
    sides = (8 / slope[:, 0].abs()).round().int()
    assert set(sides.tolist()) == set(range(8, 17))
    assert 150 < (slope[:, 0] < 0).sum() < 250
    # the same draws on every call; ranks take their rows of the global batch's draws
    again = random_rescale_crop_flip(ramp(400), torch.Generator().manual_seed(0), (8, 16))
    assert torch.equal(out, again)
    rows = random_rescale_crop_flip(ramp(200), torch.Generator().manual_seed(0), (8, 16), drawn_for=400,
                                    rows=slice(1, None, 2))  # fmt: skip
    assert torch.equal(rows, out[1::2])
    fixed = random_rescale_crop_flip(ramp(50), torch.Generator().manual_seed(0), (8, 8))
    assert all(torch.equal(f, ramp(1)[0]) or torch.equal(f, ramp(1)[0].flip(-1)) for f in fixed)
    with pytest.raises(ValueError, match="no crop fits"):
        random_rescale_crop_flip(ramp(2), torch.Generator(), (6, 12))


def test_in_memory_scale_jittering_trains_at_native_size_and_tests_whole_at_q():
    data = labelled_by_index(64)
    for x, _ in epoch(data, "train", batch_size=16, scale=(4, 8)):
        assert x.shape == (16, 1, 4, 4)
    jittered = torch.cat([x for x, _ in epoch(data, "train", batch_size=16, scale=(4, 8))])
    plain = torch.cat([x for x, _ in epoch(data, "train", batch_size=16)])
    assert not torch.equal(jittered, plain)
    (val, _), *_ = epoch(data, "val", batch_size=16, scale=(4, 8))
    assert val.shape == (16, 1, 6, 6)  # Q = (Smin + Smax) / 2, the whole image
    native = next(iter(data.batches("val", 16)))[0]
    torch.testing.assert_close(val, torch.nn.functional.interpolate(native, size=(6, 6), mode="bilinear"))


def test_training_batches_are_cut_from_images_padded_by_4_on_each_side():
    """ResNet Sec. 4.2 on the batches training draws, not on the crop function alone: white images, so the padding
    shows as the zero (- mean) rows and columns at a crop's edge, 0 to 4 of them, each width drawn."""
    images = torch.full((256, 1, 12, 12), 255, dtype=torch.uint8)
    splits = {split: TensorImages(images, torch.zeros(256, dtype=torch.int64), torch.arange(256)) for split in
              ("train", "val", "test")}  # fmt: skip
    data = TensorData("white", ["white"], splits, "pixel", source="test")
    x = torch.cat([x for x, _ in epoch(data, batch_size=64, seed=3)])
    padded = x[:, 0] < -0.5  # white - mean is 0; a padded pixel is 0 - 1
    rows, cols = padded.all(2), padded.all(1)  # (B, 12): which rows, which columns are padding alone
    widths = {"top": rows[:, :6].sum(1), "bottom": rows[:, 6:].sum(1), "left": cols[:, :6].sum(1),
              "right": cols[:, 6:].sum(1)}  # fmt: skip
    for side, width in widths.items():
        assert set(width.tolist()) == {0, 1, 2, 3, 4}, side
    assert torch.equal(padded.sum((1, 2)), 12 * (rows.sum(1) + cols.sum(1)) - rows.sum(1) * cols.sum(1))
    (val, _), *_ = epoch(data, "val", batch_size=8)
    assert (val == 0).all()  # evaluation is never padded


def test_pca_lighting_adds_one_colour_per_image_along_the_eigenvectors():
    images = torch.zeros(4, 3, 5, 5)
    pca_lighting(images, torch.Generator().manual_seed(0), std=0.1)
    alpha = torch.randn(4, 3, generator=torch.Generator().manual_seed(0)) * 0.1
    expected = (IMAGENET_EIGVEC @ (alpha * IMAGENET_EIGVAL).T).T
    torch.testing.assert_close(images, expected[:, :, None, None].expand(4, 3, 5, 5))


# CIFAR from files in the python-version pickle format


def write_cifar(root: Path, name: str, per_file: int = 20) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    folder, label_key, meta_key, files = {
        "cifar10": ("cifar-10-batches-py", "labels", "label_names", [f"data_batch_{i}" for i in range(1, 6)]),
        "cifar100": ("cifar-100-python", "fine_labels", "fine_label_names", ["train"]),
    }[name]
    classes = 10 if name == "cifar10" else 100
    (root / folder).mkdir(parents=True)
    written = {}
    for file in [*files, "test_batch" if name == "cifar10" else "test"]:
        data = rng.integers(0, 256, (per_file, 3072), dtype=np.uint8)
        entry = {"data": data, label_key: rng.integers(0, classes, per_file).tolist()}
        (root / folder / file).write_bytes(pickle.dumps(entry))
        written[file] = data
    meta = {meta_key: [f"class{i}" for i in range(classes)]}
    (root / folder / ("batches.meta" if name == "cifar10" else "meta")).write_bytes(pickle.dumps(meta))
    return written


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_reads_the_python_version_files(tmp_path, name):
    written = write_cifar(tmp_path, name)
    data = load_data(name, tmp_path, val_size=10)
    train_files = 5 if name == "cifar10" else 1
    assert data.sizes == {"train": train_files * 20 - 10, "val": 10, "test": 20}
    assert (data.name, data.num_classes, data.in_channels, data.image_size) == (name, len(data.classes), 3, 32)
    assert data.classes[:2] == ["class0", "class1"]
    test = data.images("test")[3][0]
    assert torch.equal(
        test, torch.from_numpy(written["test_batch" if name == "cifar10" else "test"][3]).view(3, 32, 32)
    )
    folder = next(tmp_path.iterdir())
    assert load_data(str(folder), val_size=10).name == name  # the folder itself, as a path
    x, _ = next(iter(data.batches("train", 8)))
    assert x.shape == (8, 3, 32, 32)


# image folders


def write_image(path: Path, size: tuple[int, int], colour: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.full((size[1], size[0], 3), colour, dtype=np.uint8)
    pixels[::3] //= 2  # some structure, so crops differ
    Image.fromarray(pixels).save(path)


def write_folder(root: Path) -> Path:
    for split, count in (("train", 6), ("val", 2)):
        for label, (name, colour) in enumerate((("cat", (200, 30, 30)), ("dog", (30, 30, 200)))):
            for i in range(count):
                suffix = ".png" if i % 2 else ".jpg"
                write_image(root / split / name / f"{i}{suffix}", (40 + 7 * i, 36 + 5 * label), colour)
    (root / "train" / "cat" / ".DS_Store").write_bytes(b"\0")
    return root


def test_an_image_folder_loads_with_class_names_from_its_folders(tmp_path):
    data = load_data(str(write_folder(tmp_path / "pets")), image_size=32, scale=(36, 48), workers=0)
    assert (data.name, data.classes, data.in_memory) == ("pets", ["cat", "dog"], False)
    assert data.sizes == {"train": 12, "val": 4, "test": 4} and data.skipped == 0
    assert data.mean.shape == (3, 32, 32) and any("no test/ folder" in note for note in data.notes)
    image, label = data.images("train")[1]
    assert image.shape == (3, 36, 47) and image.dtype == torch.uint8 and label == 0
    (x, y), *_ = epoch(data, batch_size=5, seed=1)
    assert x.shape == (5, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    x_val, y_val = next(iter(data.batches("val", 4)))
    assert y_val.tolist() == [0, 0, 1, 1]
    # cats are red, dogs blue
    assert (x_val[:2, 0].mean() > x_val[:2, 2].mean()) and (x_val[2:, 2].mean() > x_val[2:, 0].mean())
    resumed = epoch(data, batch_size=5, seed=1, start=1)
    for (x, y), (x_resumed, y_resumed) in zip(epoch(data, batch_size=5, seed=1)[1:], resumed):
        assert torch.equal(x, x_resumed) and torch.equal(y, y_resumed)


def test_an_image_folder_trains_on_crops_of_every_scale_in_its_range(tmp_path):
    """Scale jittering (VGG Sec. 3.1) on the batches an image folder yields: horizontal ramps of 4 levels a
    column, so a crop's slope, 4 x 64 / S, says the side S its image was resized to."""
    for split, count in (("train", 8), ("val", 2)):
        for name in ("a", "b"):
            for i in range(count):
                width = 64 + 8 * (i % 2)  # two sizes: a folder of large files, not held in memory
                pixels = np.repeat((4 * np.minimum(np.arange(width), 63)).astype(np.uint8)[None, :, None], 64, 0)
                path = tmp_path / "ramps" / split / name / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.repeat(pixels, 3, 2)).save(path)
    data = load_data(str(tmp_path / "ramps"), image_size=32, scale=(32, 64), mean="rgb", workers=0)
    assert not data.in_memory
    x = torch.cat([x for e in range(8) for x, _ in epoch(data, batch_size=16, seed=0, epoch=e)])
    row = 255 * (x[:, 0, 16] + data.mean[0, 0, 0])  # the middle row, back in levels
    slope = row[:, 9:23].diff().abs().mean(1)  # interior columns: clear of the ramp's flat end
    sides = 4 * 64 / slope
    assert sides.min() < 36 and sides.max() > 58  # the range's two ends are drawn
    assert ((sides > 40) & (sides < 56)).any()  # and its middle


def write_small_folder(root: Path, per_class: int = 6, size: int = 12) -> Path:
    """Grey PNGs of one small size; class k's images are brighter on the left for k = 0, on the right for 1."""
    rng = np.random.default_rng(0)
    for split, count in (("train", per_class), ("val", 2)):
        for label, name in enumerate(("left", "right")):
            for i in range(count):
                pixels = rng.integers(0, 60, (size, size), dtype=np.uint8)
                half = slice(0, size // 2) if label == 0 else slice(size // 2, size)
                pixels[:, half] += 150
                path = root / split / name / f"{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels, mode="L").save(path)
    return root


def test_a_folder_of_small_images_is_held_in_memory_at_its_own_size_and_channels(tmp_path):
    root = write_small_folder(tmp_path / "digits")
    data = load_data(str(root), workers=0)
    assert (data.in_memory, data.in_channels, data.image_size) == (True, 1, 12)
    assert data.sizes == {"train": 12, "val": 4, "test": 4} and data.classes == ["left", "right"]
    first = Image.open(root / "train" / "left" / "0.png")
    assert torch.equal(data.images("train").images[0, 0], torch.from_numpy(np.array(first)))
    (x, y), *_ = epoch(data, batch_size=4, seed=1)
    assert x.shape == (4, 1, 12, 12)  # the batched CIFAR-style augmentation at native size
    x_val, y_val = next(iter(data.batches("val", 4)))
    left, right = x_val[..., :6].mean((1, 2, 3)), x_val[..., 6:].mean((1, 2, 3))
    assert ((left > right) == (y_val == 0)).all()
    # an explicit size is honoured (and cached apart)
    assert load_data(str(root), image_size=16, workers=0).images("val").images.shape[-2:] == (16, 16)
    assert load_data(str(root), subset=4, workers=0).sizes["train"] == 4


def test_the_decoded_folder_is_cached_and_decoded_again_when_a_file_changes(tmp_path, monkeypatch):
    from verydeep.data import smallfolder

    root = write_small_folder(tmp_path / "digits")
    decoded = []
    real = smallfolder.decode
    monkeypatch.setattr(smallfolder, "decode", lambda paths, *a: decoded.append(len(paths)) or real(paths, *a))
    first = load_data(str(root), workers=0).images("train").images
    again = load_data(str(root), workers=0).images("train").images
    assert decoded == [16] and torch.equal(first, again)
    changed = root / "train" / "left" / "0.png"
    Image.fromarray(np.zeros((12, 12), dtype=np.uint8), mode="L").save(changed)
    reloaded = load_data(str(root), workers=0).images("train").images
    assert decoded == [16, 16] and reloaded[0].sum() == 0 and not torch.equal(reloaded, first)
    assert len(list(smallfolder.cache_root().glob(f"{smallfolder.cache_prefix(root)}-*"))) == 1  # the stale one went


def test_a_file_rewritten_at_the_same_size_is_decoded_again(tmp_path, monkeypatch):
    """The cache's key holds each file's modification time, not its size alone: an uncompressed PNG keeps its size
    whatever its pixels."""
    import os

    from verydeep.data import smallfolder

    root = write_small_folder(tmp_path / "digits")
    path = root / "train" / "left" / "0.png"
    Image.fromarray(np.full((12, 12), 30, dtype=np.uint8), mode="L").save(path, compress_level=0)
    first = load_data(str(root), workers=0).images("train").images
    size, mtime = path.stat().st_size, path.stat().st_mtime_ns
    Image.fromarray(np.full((12, 12), 220, dtype=np.uint8), mode="L").save(path, compress_level=0)
    os.utime(path, ns=(mtime + 10**9, mtime + 10**9))
    assert path.stat().st_size == size
    decoded = []
    real = smallfolder.decode
    monkeypatch.setattr(smallfolder, "decode", lambda paths, *a: decoded.append(len(paths)) or real(paths, *a))
    again = load_data(str(root), workers=0).images("train").images
    assert decoded == [16]  # the folder's 16 files, decoded again
    assert (again == 220).flatten(1).all(1).sum() == 1 and not (first == 220).flatten(1).all(1).any()


def test_a_small_folder_that_would_not_fit_in_memory_streams_instead(tmp_path, monkeypatch):
    from verydeep.data import smallfolder

    monkeypatch.setattr(smallfolder, "memory_bytes", lambda: 1000)
    data = load_data(str(write_small_folder(tmp_path / "digits")), image_size=12, scale=(12, 16), workers=0)
    assert not data.in_memory


def test_unreadable_files_are_errors_naming_them_or_skipped_and_counted(tmp_path):
    root = write_folder(tmp_path / "pets")
    notes = root / "train" / "dog" / "notes.txt"
    notes.write_text("not an image")
    with pytest.raises(ValueError, match=r"notes\.txt.*--skip-bad"):
        load_data(str(root), image_size=32, scale=(36, 48), workers=0)
    notes.unlink()
    corrupt = root / "val" / "cat" / "broken.jpg"
    corrupt.write_bytes(b"this is no jpeg" * 10)
    for workers in (0, 1):  # one line naming the file, whether a DataLoader worker decoded it or not
        data = load_data(str(root), image_size=32, scale=(36, 48), workers=workers)
        with pytest.raises(ValueError, match=r"broken\.jpg.*--skip-bad") as error:
            epoch(data, "val", 4)
        assert "\n" not in str(error.value) and "Traceback" not in str(error.value)

    notes.write_text("not an image")
    data = load_data(str(root), image_size=32, scale=(36, 48), workers=0, skip_bad=True)
    assert data.sizes["val"] == 5 and data.skipped == 1
    assert sum(len(y) for _, y in epoch(data, "val", 4)) == 4
    assert data.skipped == 2


def test_a_wholly_unreadable_batch_is_skipped_alone_but_stops_distributed_training(tmp_path):
    root = write_folder(tmp_path / "pets")
    data = load_data(str(root), image_size=32, scale=(36, 48), workers=0, skip_bad=True)
    for image in (root / "train").rglob("*.*g"):
        image.write_bytes(b"damaged after the scan")
    assert epoch(data, batch_size=4) == [] and data.skipped == 12
    with pytest.raises(ValueError, match="cannot skip a step on one rank"):
        epoch(data, batch_size=4, rank=0, world_size=2)


def test_a_path_without_a_data_set_or_an_unknown_name_says_what_is_expected(tmp_path):
    with pytest.raises(ValueError, match=rf"no data set in {re.escape(str(tmp_path))}.*train/ and val/"):
        load_data(str(tmp_path))
    with pytest.raises(ValueError, match=r"unknown data set 'cifar-10'\. Did you mean cifar10.*fashion-mnist"):
        load_data("cifar-10")
    with pytest.raises(ValueError, match=rf"no Fashion-MNIST in {re.escape(str(tmp_path))}"):
        load_data("fashion-mnist", tmp_path)
    assert DATASETS == ("fashion-mnist", "cifar10", "cifar100", "synthetic")


# synthetic data


def test_synthetic_data_is_deterministic_and_learnable():
    data = load_data("synthetic")
    assert data.sizes == {"train": 2560, "val": 512, "test": 512} and data.mean.shape == (3, 32, 32)
    assert synthetic.sizes(224) == {"train": 512, "val": 256, "test": 256}
    train, test = data.images("train"), data.images("test")
    assert torch.equal(load_data("synthetic", subset=100).images("test").images, test.images)
    assert not torch.equal(load_data("synthetic", subset=100, split_seed=1).images("test").images, test.images)
    # the nearest class mean already classifies the test images
    means = torch.stack([train.images[train.labels == c].float().mean(0) for c in range(10)])
    distances = torch.cdist(test.images.float().flatten(1), means.flatten(1))
    assert (distances.argmin(1) == test.labels).float().mean() > 0.9
