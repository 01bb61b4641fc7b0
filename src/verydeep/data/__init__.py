"""The data sets, one module per source, behind one call: ``load_data(name) -> Data``.

In memory (``Data.in_memory``): Fashion-MNIST (the default), CIFAR-10, CIFAR-100 and synthetic images; a batch
is gathered, augmented (ResNet Sec. 4.2: pad 4, random crop, flip) and normalised on the device in a few
tensor operations. On disk: any folder in ImageNet's layout, decoded by DataLoader workers, with the papers'
scale jittering and colour shift (VGG Sec. 3.1, ResNet Sec. 3.4).
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Literal

from . import cifar, fashion_mnist, smallfolder, synthetic
from .base import Data, Files, MeanKind, Sampling, Split
from .imagefolder import LAYOUT, FolderData, is_image_folder

DATASETS = ("fashion-mnist", "cifar10", "cifar100", "synthetic")
NATIVE_SIZE = {"fashion-mnist": 28, "cifar10": 32, "cifar100": 32}

__all__ = ["DATASETS", "Data", "Files", "MeanKind", "Sampling", "Split", "load_data", "open_data"]


def load_data(
    name: str,
    data_dir: str | Path | None = None,
    *,
    mean: Literal["pixel", "rgb"] = "pixel",
    val_size: int | None = None,
    subset: int | None = None,
    split_seed: int = 0,
    image_size: int | None = None,
    skip_bad: bool = False,
    scale: tuple[int, int] = (256, 480),
    color_jitter: bool = True,
    workers: int | None = None,
) -> Data:
    """Load a data set by name (one of ``DATASETS``) or by path (an ImageNet-style folder, or a folder holding
    the CIFAR or Fashion-MNIST files).

    mean: "pixel", the per-pixel mean image (ResNet Sec. 3.4 and 4.2), or "rgb", the mean colour (VGG Sec. 2.1),
        computed from the training images actually used.
    val_size: Fashion-MNIST and CIFAR hold this many training images out as val (default 5000: ResNet's
        45k / 5k split, Sec. 4.2); synthetic makes this many; image folders use that many of val/ (all by default).
    subset: train on only this many images (a fixed sample); val shrinks to at most max(subset // 10, 100).
    split_seed: fixes the held-out split, the subsets and the synthetic images; not the training seed.
    image_size: synthetic: the side in pixels (32); image folders of small images (all one size up to 64 px):
        the side they are held in memory at (default: their own); other image folders: the crop (224). The
        built-in sets have their own.

    Image folders only (ignored otherwise):
    skip_bad: skip files that are not images (by extension) or do not decode, counting them in
        ``Data.skipped``, instead of stopping with an error that names the file.
    scale: the range of the shorter side S for scale jittering, S ~ U[scale]: VGG (256, 512) (Sec. 3.1),
        ResNet (256, 480) (Sec. 3.4). Must start at image_size or above.
    color_jitter: AlexNet's PCA colour shift on training batches (both papers).
    workers: DataLoader processes decoding the files; default min(8, CPUs - 1).
    The mean is estimated from a fixed sample of up to 2,000 training images, resized and centre-cropped as
    for evaluation.
    """
    sampling = Sampling(mean, val_size, subset, split_seed)
    return open_data(name, data_dir, sampling, Files(image_size, skip_bad, scale, color_jitter, workers))


def open_data(name: str, data_dir: str | Path | None, sampling: Sampling, files: Files) -> Data:
    """``load_data`` with its settings as the typed objects the loaders take (the training set-up's way in)."""
    kind, data_dir = _resolve(name, data_dir)
    if kind in NATIVE_SIZE and files.image_size not in (None, NATIVE_SIZE[kind]):
        raise ValueError(
            f"{kind} images are {NATIVE_SIZE[kind]} px; image_size={files.image_size} applies to synthetic data and "
            f"image folders only: leave it unset"
        )
    if kind == "fashion-mnist":
        return fashion_mnist.load(data_dir, sampling)
    if kind in ("cifar10", "cifar100"):
        return cifar.load(kind, data_dir, sampling)
    if kind == "synthetic":
        return synthetic.load(files.image_size, sampling)
    small = smallfolder.load(Path(data_dir), sampling, files)
    return small if small is not None else FolderData(Path(data_dir), sampling, files)


def _resolve(name: str, data_dir: str | Path | None) -> tuple[str, str | Path | None]:
    """(one of DATASETS or "folder", where to look) for a name or a path."""
    if name in DATASETS:
        return name, data_dir
    path = Path(name).expanduser()
    if not path.exists():
        if any(sep in name for sep in "/\\") or name.startswith((".", "~")):
            raise ValueError(f"no such folder {path}; expected a folder with {LAYOUT}")
        close = difflib.get_close_matches(name, DATASETS, n=2)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown data set {name!r}.{hint} Valid names: {', '.join(DATASETS)}, or a path to a folder with {LAYOUT}"
        )
    if is_image_folder(path):
        return "folder", path
    for kind in ("cifar10", "cifar100"):
        if cifar.find(path, kind) is not None:
            return kind, path
    if fashion_mnist.find(path) is not None:
        return "fashion-mnist", path
    raise ValueError(
        f"no data set in {path}: expected {LAYOUT}; or {cifar.layout('cifar10')} (or CIFAR-100's "
        f"{cifar.layout('cifar100')}); or {fashion_mnist.LAYOUT}"
    )
