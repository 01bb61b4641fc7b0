"""Fashion-MNIST (Xiao et al. 2017): 60k training and 10k test 28x28 grey images of ten kinds of clothing.

The project's default data set: small enough to run the papers' CIFAR experiments (Sec. 4.2) on a CPU.
Files are read with torchvision's IDX parser; the 60k training images are split 55k / 5k like CIFAR's 45k / 5k.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import torch
from torchvision.datasets import FashionMNIST
from torchvision.datasets.mnist import read_image_file, read_label_file
from torchvision.datasets.utils import extract_archive

from .base import Sampling, cache_dir, search_roots
from .memory import TensorData, TensorImages, locate, official_data

NAME = "fashion-mnist"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist package
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
LAYOUT = "the four Fashion-MNIST files (train-images-idx3-ubyte, ..., t10k-labels-idx1-ubyte, optionally .gz)"


def holds_files(folder: Path) -> bool:
    names = [name for pair in FILES.values() for name in pair]
    return all((folder / name).is_file() or (folder / f"{name}.gz").is_file() for name in names)


def find(data_dir: str | Path | None) -> Path | None:
    """The folder holding the four files: ``data_dir`` or one of the usual roots, as is, in ``fashion-mnist/``
    or in torchvision's ``FashionMNIST/raw/``."""
    for root in search_roots(data_dir, DEBIAN_DIR):
        for folder in (root, root / NAME, root / "FashionMNIST" / "raw"):
            if holds_files(folder):
                return folder
    return None


def download() -> Path:
    try:
        FashionMNIST(cache_dir(), download=True)
    except (OSError, RuntimeError) as error:
        places = ", ".join(str(root) for root in search_roots(None, DEBIAN_DIR))
        raise ValueError(
            f"Fashion-MNIST is not in {places}, and downloading it failed ({error}). Install Debian's "
            f"dataset-fashion-mnist package, or put {LAYOUT} in a folder and pass it as data_dir or $VERYDEEP_DATA"
        ) from error
    return cache_dir() / "FashionMNIST" / "raw"


@functools.lru_cache(maxsize=2)
def read(folder: Path) -> dict[str, TensorImages]:
    """Both official splits, uint8 N x 1 x 28 x 28. Cached: experiments and tests load the same files often."""
    splits = {}
    with tempfile.TemporaryDirectory() as scratch:
        for split, (images_file, labels_file) in FILES.items():
            images = read_image_file(_plain(folder, images_file, scratch))
            labels = read_label_file(_plain(folder, labels_file, scratch))
            splits[split] = TensorImages(images[:, None], labels, torch.arange(len(images)))
    return splits


def _plain(folder: Path, name: str, scratch: str) -> str:
    """The uncompressed file: as found, or extracted from its .gz into ``scratch`` (the torchvision parser
    reads plain files only, and the Debian folder is read-only)."""
    if (folder / name).is_file():
        return str(folder / name)
    return str(extract_archive(str(folder / f"{name}.gz"), scratch))


def load(data_dir: str | Path | None, sampling: Sampling) -> TensorData:
    not_there = (
        f"no Fashion-MNIST in {data_dir}: expected {LAYOUT} there, in {data_dir}/{NAME}/ or in "
        f"{data_dir}/FashionMNIST/raw/; put them there, or leave data_dir unset to use $VERYDEEP_DATA, "
        f"{DEBIAN_DIR} or a download into {cache_dir()}"
    )
    folder = locate(find(data_dir), data_dir, not_there, download)
    return official_data(NAME, list(FashionMNIST.classes), read(folder.resolve()), folder, sampling)
