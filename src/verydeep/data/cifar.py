"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009), the python-version folders, read by torchvision's classes.

50k training and 10k test 32x32 RGB images; ResNet's CIFAR experiments (Sec. 4.2) hold 5k of the training set
out as val (45k / 5k) to choose the schedule.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Literal

import torch
from torchvision.datasets import CIFAR10, CIFAR100

from .base import Sampling, cache_dir, search_roots
from .memory import TensorData, TensorImages, locate, official_data

CifarName = Literal["cifar10", "cifar100"]


class _CIFAR10Files(CIFAR10):
    # torchvision compares each file's md5 sum with the official release's, which rejects every other copy in
    # the same pickle format (the tests write small ones); only the files' presence is checked here. A wrong
    # file still fails, when unpickled. base_folder "" because ``root`` is the folder holding the batches.
    base_folder = ""
    train_list = [[name, None] for name, _ in CIFAR10.train_list]
    test_list = [[name, None] for name, _ in CIFAR10.test_list]
    meta = {**CIFAR10.meta, "md5": None}


class _CIFAR100Files(CIFAR100):
    # as _CIFAR10Files
    base_folder = ""
    train_list = [[name, None] for name, _ in CIFAR100.train_list]
    test_list = [[name, None] for name, _ in CIFAR100.test_list]
    meta = {**CIFAR100.meta, "md5": None}


OFFICIAL = {"cifar10": CIFAR10, "cifar100": CIFAR100}
READERS = {"cifar10": _CIFAR10Files, "cifar100": _CIFAR100Files}


def files(name: CifarName) -> list[str]:
    official = OFFICIAL[name]
    return [file for file, _ in official.train_list + official.test_list] + [official.meta["filename"]]


def holds_files(folder: Path, name: CifarName) -> bool:
    return all((folder / file).is_file() for file in files(name))


def find(data_dir: str | Path | None, name: CifarName) -> Path | None:
    """The folder holding the batches: ``data_dir`` or one of the usual roots, or its ``cifar-10-batches-py``
    (``cifar-100-python``) subfolder."""
    for root in search_roots(data_dir):
        for folder in (root, root / OFFICIAL[name].base_folder):
            if holds_files(folder, name):
                return folder
    return None


def layout(name: CifarName) -> str:
    return f"a {OFFICIAL[name].base_folder}/ folder with {', '.join(files(name))}"


def download(name: CifarName) -> Path:
    try:
        OFFICIAL[name](cache_dir(), download=True)
    except (OSError, RuntimeError) as error:
        places = ", ".join(str(root) for root in search_roots(None))
        raise ValueError(
            f"{name} is not in {places}, and downloading it failed ({error}); put {layout(name)} in one of "
            f"those, or pass its parent as data_dir"
        ) from error
    return cache_dir() / OFFICIAL[name].base_folder


def read(folder: Path, name: CifarName) -> tuple[list[str], dict[str, TensorImages]]:
    """The class names and both official splits, uint8 N x 3 x 32 x 32."""
    splits = {}
    try:
        for split in ("train", "test"):
            dataset = READERS[name](str(folder), train=split == "train")
            # torchvision turns the batches' CHW rows into HWC for PIL; the training loop wants CHW back
            images = torch.from_numpy(dataset.data).permute(0, 3, 1, 2).contiguous()
            splits[split] = TensorImages(images, torch.tensor(dataset.targets), torch.arange(len(images)))
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError) as error:
        raise ValueError(
            f"cannot read {name} from {folder} ({type(error).__name__}: {error}); expected the python-version "
            f"files ({', '.join(files(name))}): download them again"
        ) from error
    return list(dataset.classes), splits


def load(
    name: CifarName,
    data_dir: str | Path | None,
    sampling: Sampling,
) -> TensorData:
    not_there = (
        f"no {name} in {data_dir}: expected {layout(name)}, as {data_dir} itself or inside it; put it "
        f"there, or leave data_dir unset to use $VERYDEEP_DATA or a download into {cache_dir()}"
    )
    folder = locate(find(data_dir, name), data_dir, not_there, lambda: download(name))
    classes, official = read(folder, name)
    return official_data(name, classes, official, folder, sampling)
