"""Data sets small enough to hold as one uint8 tensor per split: Fashion-MNIST, CIFAR, synthetic."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .augment import PADDING, random_crop_flip, random_rescale_crop_flip, rescale, test_side
from .base import (
    SPLITS,
    BatchPlan,
    Data,
    MeanKind,
    Sampling,
    generator,
    mean_from_sum,
    pixel_sum,
    rank_batches,
    to_float,
)


class TensorImages(Dataset):
    """(uint8 image (C, H, W), int label) pairs from tensors. ``index`` is each image's position in the
    source's own split (the official training or test set), which records the held-out split."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, index: torch.Tensor):
        self.images, self.labels, self.index = images, labels, index

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.images[i], int(self.labels[i])


def hold_out(train: TensorImages, val_size: int, sampling: Sampling) -> tuple[TensorImages, TensorImages]:
    """Split an official training set into train and a held-out val by a permutation fixed by ``split_seed``
    (ResNet Sec. 4.2 chose its schedule on a 45k/5k split of CIFAR-10's training set).

    With ``subset``, val shrinks to max(subset // 10, 100) images, taken from the same held-out images, and
    train is ``subset`` images from outside all of them: a subset run never trains on the full run's val.
    """
    n = len(train)
    if not 0 <= val_size < n:
        raise ValueError(f"val_size must be in [0, {n}) for a training set of {n:,} images, not {val_size}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(sampling.split_seed))
    val_index, train_index = perm[:val_size], perm[val_size:]
    if (subset := sampling.subset) is not None:
        if subset > len(train_index):
            raise ValueError(
                f"subset={subset:,} is more than the {len(train_index):,} training images left after holding out "
                f"{val_size:,} for val; pass a smaller subset or val_size"
            )
        val_index, train_index = val_index[: sampling.val_cap()], train_index[:subset]
    return _take(train, train_index.sort().values), _take(train, val_index.sort().values)


def official_data(
    name: str,
    classes: list[str],
    official: dict[str, TensorImages],
    source: Path,
    sampling: Sampling,
) -> TensorData:
    """A data set from its official train and test splits, val held out of train (5,000 images by default)."""
    train, val = hold_out(official["train"], 5000 if sampling.val_size is None else sampling.val_size, sampling)
    splits = {"train": train, "val": val, "test": official["test"]}
    return TensorData(name, classes, splits, sampling.mean, source=str(source))


def locate(found: Path | None, data_dir: str | Path | None, not_there: str, download: Callable[[], Path]) -> Path:
    """The folder ``find`` found; else, if the caller named a folder, ``not_there`` as the error (never a download
    in its place); else a download into the cache."""
    if found is not None:
        return found
    if data_dir is not None:
        raise ValueError(not_there)
    return download()


def _take(images: TensorImages, index: torch.Tensor) -> TensorImages:
    return TensorImages(images.images[index], images.labels[index], images.index[index])


class TensorData(Data):
    """Splits held in memory as uint8 tensors; a batch is gathered, augmented and normalised on the device.

    The first ``batches`` call on a device copies that split there once (CIFAR's training set is 138 MB), so
    later batches are gathered on the device and no image crosses from the host per batch.
    """

    in_memory = True

    def __init__(
        self,
        name: str,
        classes: list[str],
        splits: dict[str, TensorImages],
        mean: MeanKind,
        source: str,
        notes: list[str] | None = None,
    ):
        train = splits["train"]
        super().__init__(
            name=name,
            classes=classes,
            in_channels=train.images.shape[1],
            image_size=train.images.shape[-1],
            mean=mean_from_sum(pixel_sum(train.images), len(train), mean),
            sizes={split: len(splits[split]) for split in SPLITS},
            source=source,
            notes=notes,
        )
        self._splits = splits
        self._on_device: dict[tuple[str, torch.device], tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}

    def images(self, split: str) -> TensorImages:
        return self._splits[self._check_split(split)]

    def _tensors(self, split: str, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        key = (split, device)
        if key not in self._on_device:
            data = self._splits[split]
            self._on_device[key] = (data.images.to(device), data.labels.to(device), self.mean.to(device))
        return self._on_device[key]

    def _generate(self, plan: BatchPlan) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        images, labels, mean = self._tensors(plan.split, plan.device)
        rows = slice(plan.rank, None, plan.world_size)
        layout = torch.channels_last if plan.channels_last else torch.contiguous_format
        for k, index, global_size in rank_batches(plan, plan.order.to(plan.device)):
            x = images[index]
            # Global batch k's draws, the same on every rank (made only for augmented batches). The 0 held the
            # rank before the ranks shared their draws; it stays so that single-process runs draw as they did.
            draws = generator("augment", *plan.keys, 0, k) if plan.augment else None
            if not plan.scale:
                if plan.augment:
                    x = random_crop_flip(x, draws, padding=PADDING, drawn_for=global_size, rows=rows)
                yield to_float(x, mean, plan.channels_last), labels[index]
                continue
            # scale jittering: rescaled after the mean is taken off (both linear: the rescaled mean is taken off)
            x = to_float(x, mean, channels_last=False)
            if plan.augment:
                x = random_rescale_crop_flip(x, draws, plan.scale, drawn_for=global_size, rows=rows)
            else:
                x = rescale(x, test_side(plan.scale))
            yield x.contiguous(memory_format=layout), labels[index]
