"""What every source hands the training loop: ``Data``, its batch plan, and where data sets are looked for."""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch.utils.data import Dataset

Split = Literal["train", "val", "test"]
SPLITS: tuple[str, ...] = ("train", "val", "test")
MeanKind = Literal["pixel", "rgb"]


@dataclass(frozen=True)
class Sampling:
    """Which images of a data set a run uses, and the mean taken off them: the same for every source."""

    mean: MeanKind = "pixel"
    val_size: int | None = None  # held-out (or val/) images; None: the source's default
    subset: int | None = None  # train on this many images, a fixed sample
    split_seed: int = 0  # fixes the held-out split, the subsets and synthetic images

    def __post_init__(self) -> None:
        if self.mean not in ("pixel", "rgb"):
            raise ValueError(f"mean must be 'pixel' (ResNet) or 'rgb' (VGG), not {self.mean!r}")
        if self.subset is not None and self.subset < 1:
            raise ValueError(f"subset must be a positive number of training images, not {self.subset}")
        if self.val_size is not None and self.val_size < 0:
            raise ValueError(f"val_size must be >= 0, not {self.val_size}")

    def val_cap(self) -> int | None:
        """With ``subset``, val shrinks to at most a tenth of it (never under 100 images); None without."""
        return None if self.subset is None else max(self.subset // 10, 100)


@dataclass(frozen=True)
class Files:
    """How an image folder is read and augmented (ignored by the built-in data sets)."""

    image_size: int | None = None  # held in memory at (small images), or the crop (224)
    skip_bad: bool = False  # skip and count unreadable files instead of stopping on the first
    scale: tuple[int, int] = (256, 480)  # the shorter side's range for scale jittering
    color_jitter: bool = True  # AlexNet's PCA colour shift on training batches
    workers: int | None = None  # DataLoader processes decoding files


def derive_seed(*keys: object) -> int:
    """A 63-bit seed from a tuple of keys: (seed, epoch) and (seed, epoch, batch) give unrelated streams."""
    digest = hashlib.blake2b(repr(keys).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def generator(*keys: object) -> torch.Generator:
    """A CPU generator seeded from ``keys``; drawing on the CPU makes the numbers the same on every device."""
    return torch.Generator().manual_seed(derive_seed(*keys))


def cache_dir() -> Path:
    """Where downloads go: ``$XDG_CACHE_HOME/verydeep``, by default ``~/.cache/verydeep``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "verydeep"


def search_roots(data_dir: str | Path | None, *system: Path) -> list[Path]:
    """The folders to look in: ``data_dir`` alone when given, else ``$VERYDEEP_DATA``, ``system``, the cache."""
    if data_dir is not None:
        return [Path(data_dir).expanduser()]
    env = os.environ.get("VERYDEEP_DATA")
    return [*([Path(env).expanduser()] if env else []), *system, cache_dir()]


def pixel_sum(images: torch.Tensor, chunk: int = 1024) -> torch.Tensor:
    """Exact int64 sum over the batch of uint8 images (N, C, H, W), by chunks so the int64 copy stays small."""
    total = torch.zeros(images.shape[1:], dtype=torch.int64)
    for part in images.split(chunk):
        total += part.sum(0, dtype=torch.int64)
    return total


def mean_from_sum(total: torch.Tensor, count: int, kind: MeanKind) -> torch.Tensor:
    """The mean image (C, H, W) for "pixel", or the mean colour (C, 1, 1) for "rgb", in [0, 1] units, float32.

    ResNet subtracts the per-pixel mean (Sec. 3.4 ImageNet, Sec. 4.2 CIFAR); VGG the mean RGB value (Sec. 2.1).
    """
    if count == 0:
        raise ValueError(
            "no training images to compute the mean from: the training split is empty, or every image sampled "
            "for the mean was unreadable and skipped; check the training files"
        )
    if kind == "rgb":
        pixels = count * total.shape[1] * total.shape[2]
        return (total.sum((1, 2), keepdim=True).double() / (pixels * 255)).float()
    return (total.double() / (count * 255)).float()


def to_float(images: torch.Tensor, mean: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """uint8 (B, C, H, W) -> float32 (images / 255) - mean, in the asked memory format, in one copy."""
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return images.to(torch.float32, memory_format=layout).div_(255).sub_(mean)


class Data:
    """A data set split into train / val / test, with the batches the training loop asks for.

    Made by ``load_data``. Subclasses hold the images: ``TensorData`` (in memory) and ``FolderData`` (files on
    disk, decoded in DataLoader workers). Both yield the same batches for the same arguments on any device.
    """

    in_memory: bool = False

    def __init__(
        self,
        name: str,
        classes: list[str],
        in_channels: int,
        image_size: int,
        mean: torch.Tensor,
        sizes: dict[str, int],
        source: str,
        notes: list[str] | None = None,
    ):
        self.name = name
        self.classes = list(classes)
        self.in_channels = in_channels
        self.image_size = image_size
        self.mean = mean
        self.sizes = dict(sizes)
        self.source = source  # where the images came from, for the run's record
        self.notes = list(notes or [])  # what the caller should print, e.g. "test split is the val folder"

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def skipped(self) -> int:
        """Files skipped as unreadable so far (image folders with ``skip_bad``); always 0 in memory."""
        return 0

    def __repr__(self) -> str:
        sizes = ", ".join(f"{split} {n:,}" for split, n in self.sizes.items())
        shape = f"{self.in_channels}x{self.image_size}x{self.image_size}"
        return f"{type(self).__name__}({self.name!r}: {self.num_classes} classes, {shape}, {sizes}; {self.source})"

    def num_batches(self, split: Split, batch_size: int, *, world_size: int = 1, drop_last: bool | None = None) -> int:
        """Batches one rank gets from ``batches`` with the same arguments (rank 0 when the last is partial)."""
        n = self.sizes[self._check_split(split)]
        if batch_size < 1 or world_size < 1:
            raise ValueError(f"batch_size and world_size must be at least 1, not {batch_size} and {world_size}")
        per_step = batch_size * world_size
        return n // per_step if _drop_last(split, drop_last) else math.ceil(n / per_step)

    def batches(
        self,
        split: Split,
        batch_size: int,
        *,
        epoch: int = 0,
        start: int = 0,
        seed: int = 0,
        augment: bool | None = None,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool | None = None,
        device: torch.device | str = "cpu",
        channels_last: bool = False,
        scale: tuple[int, ...] = (),
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield (x, y): x float32 (uint8 / 255) - mean, shape (B, C, H, W) on ``device``; y int64 labels.

        train: shuffled by a permutation drawn from (seed, epoch) alone, so a run resumed at batch ``start``
        of ``epoch`` sees exactly the batches of an uninterrupted run. val / test: in order. ``augment`` defaults
        to True for train only, ``drop_last`` likewise. With ``world_size`` > 1, rank r takes every
        world_size-th sample of the epoch's order: its batch k is rows r, r + world_size, ... of the global
        batch k (``batch_size`` * world_size) a single process would take. Without drop_last, when fewer samples
        than ranks remain for the last step, the higher ranks have one batch fewer.

        The augmentation's random numbers for global batch k come from a generator seeded by (seed, epoch, k).
        In memory every rank draws them for the whole global batch and takes its rows, so N ranks of
        ``batch_size`` train on exactly the images one process of N * ``batch_size`` sees. Image folders crop
        in DataLoader workers, one rank's batch per task, and seed by rank as well: the same distribution, not
        the same numbers.

        ``scale`` (in memory only; the recipe's ``small_scale``): VGG's scale jittering, Smin and Smax; training
        images are rescaled to a random S in it and cropped, the others rescaled to the range's middle.
        """
        self._check_split(split)
        if scale and not self.in_memory:
            raise ValueError(
                "small_scale jitters images held in memory; an image folder jitters by the recipe's scale "
                "(--scale SMIN,SMAX)"
            )
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), not {rank}")
        if start < 0:
            raise ValueError(f"start must be a batch index >= 0, not {start}")
        count = self.num_batches(split, batch_size, world_size=world_size, drop_last=drop_last)
        if split == "train":
            order = torch.randperm(self.sizes[split], generator=generator("order", seed, epoch))
        else:
            order = torch.arange(self.sizes[split])
        order = order[: count * batch_size * world_size]  # drop_last leaves the partial global batch out
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            # "cuda" and "cuda:0" must name one device, or the in-memory splits would be copied there twice
            device = torch.device("cuda", torch.cuda.current_device())
        augment = split == "train" if augment is None else augment
        plan = BatchPlan(split, order, batch_size, start, rank, world_size, augment, (split, seed, epoch), device,
                         channels_last, tuple(scale))  # fmt: skip
        return self._generate(plan)

    def images(self, split: Split) -> Dataset:
        """Map-style dataset of (uint8 image (C, H, W) at its original size, int label), no transform at all.

        For the evaluation protocols (dense, multi-crop, ten-crop) and predict, which do their own resizing.
        """
        raise NotImplementedError

    def _generate(self, plan: BatchPlan) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield this rank's batches of the plan's global batches (see ``rank_batches``) from its ``start``;
        batch k's random numbers come from ``generator(kind, *plan.keys, ..., k)``."""
        raise NotImplementedError

    def _check_split(self, split: str) -> str:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; valid splits: {', '.join(SPLITS)}")
        return split


@dataclass(frozen=True)
class BatchPlan:
    """What ``Data.batches`` asks of a data set's ``_generate``: which samples, in which batches, for which rank,
    made how."""

    split: str
    order: torch.Tensor  # the epoch's sample indices, cut to whole global batches where drop_last
    batch_size: int  # per rank
    start: int  # the first global batch to yield
    rank: int
    world_size: int
    augment: bool
    keys: tuple  # (split, seed, epoch): what the batches' random numbers are derived from
    device: torch.device
    channels_last: bool
    scale: tuple[int, ...] = ()  # in memory: scale jittering's (Smin, Smax); () for none


def rank_batches(plan: BatchPlan, order: torch.Tensor | None = None) -> Iterator[tuple[int, torch.Tensor, int]]:
    """(k, this rank's sample indices, size of global batch k) for the plan's global batches from its ``start``
    (of ``order`` if given: the plan's order moved to a device). Rank r takes rows r::world_size of each, so the
    ranks' batches together are the global batch."""
    order = plan.order if order is None else order
    rank, world_size = plan.rank, plan.world_size
    for k, batch in enumerate(order.split(plan.batch_size * world_size)[plan.start :], plan.start):
        rows = batch[rank::world_size]
        if len(rows):  # fewer samples than ranks in the last global batch: the higher ranks have none
            yield k, rows, len(batch)


def _drop_last(split: str, drop_last: bool | None) -> bool:
    return split == "train" if drop_last is None else drop_last
