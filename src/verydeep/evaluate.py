"""Evaluation: the 'center' protocol the training loop uses, and the papers' test protocols.

center      one view per image, the training loop's own evaluation: the image itself for data stored at the
            training size (Fashion-MNIST, CIFAR, synthetic; ResNet Sec. 4.2 "evaluate the single view of the
            original 32x32 image"), else the centre crop of the image rescaled to shorter side 256 (224 crops).
tencrop     the four corner crops and the centre crop, and their horizontal flips (ResNet Sec. 3.4's "standard
            10-crop testing", AlexNet's): from the image rescaled to shorter side 256 for image folders. For
            28-32 px data, which has no larger image to crop from, the crops are cut from the image zero-padded
            by 4 px, the padding the training crops came from (ResNet Sec. 4.2): our reading, not the paper's.
dense       VGG Sec. 3.2: the fully convolutional form (FC6 a 7x7 conv, FC7 and FC8 1x1 convs) over the whole
            image rescaled to shorter side Q, its class-score map averaged over space, and the same for the
            flipped image; Q in {256, 384, 512} (Tables 4 and 5).
multicrop   VGG Sec. 3.2: a 5x5 regular grid of 224 crops of the image at each Q, and their flips: 50 per scale.
multiscale  ResNet Sec. 3.4: the fully convolutional form over the whole image at shorter sides
            {224, 256, 384, 480, 640}. A ResNet ends in a global average pool, so it is its own fully
            convolutional form. Flips are averaged in as in the VGG dense evaluation the paper cites for it.

Every view of an image (crop, flip, scale) counts once: their soft-max class posteriors are averaged, as VGG
Sec. 3.2 and 4.2-4.3 average "soft-max class posteriors" over flips, crops and scales. The scales are the
papers' for 224 px crops; for other training sizes they keep the same ratio to the crop (28 px: Q = 32, 48, 64).

The mean subtracted is the training set's: the per-pixel mean (ResNet) is a mean of training-size crops, so
it is subtracted from every view of that size wherever it was cut, as training subtracts it after the random
crop; views of another size (whole images in dense and multiscale) get its per-channel average, the mean
colour (VGG's mean, Sec. 2.1), rather than a mean image stretched to a layout it never had.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from .data.augment import PADDING, PAPER_CROP, resize_side
from .data.base import Data
from .data.imagefolder import worker_errors
from .device import autocast
from .metrics import Tally
from .models.layers import input_channels, output_classes
from .runs import EvalResult
from .trained import Preprocessing

Protocol = Literal["center", "tencrop", "dense", "multicrop", "multiscale"]
PROTOCOLS: tuple[str, ...] = get_args(Protocol)
VGG_SCALES = (256, 384, 512)  # test scales Q of VGG Tables 4 and 5 (dense and multi-crop)
RESNET_SCALES = (224, 256, 384, 480, 640)  # shorter sides of ResNet Sec. 3.4's multi-scale testing
GRID = 5  # multi-crop: "a 5x5 regular grid with 2 flips" per scale (VGG Sec. 4.3 footnote)
SCALED = ("dense", "multicrop", "multiscale")


# Views --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Views:
    """The views a protocol takes of a batch of same-size uint8 images (B, C, H, W): a list of groups
    (B, V, C, h, w), one per view size. ``stored_at_crop``: the images are at the training size already
    (Fashion-MNIST, CIFAR, synthetic), not photos to rescale (image folders)."""

    protocol: Protocol
    crop: int
    scales: tuple[int, ...] = ()
    stored_at_crop: bool = False
    resize: int | None = None

    @property
    def per_image(self) -> int:
        """Views of each image, all counted alike in the average."""
        return {
            "center": 1,
            "tencrop": 10,
            "multicrop": 2 * GRID * GRID * len(self.scales),
            "dense": 2 * len(self.scales),
            "multiscale": 2 * len(self.scales),
        }[self.protocol]

    @property
    def same_size(self) -> bool:
        """Whether every image's views have one size (crops), so that images of any size batch together."""
        return self.protocol in ("center", "tencrop", "multicrop")

    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        if self.protocol == "center" and self.stored_at_crop:
            return [images[:, None]]
        if self.protocol in ("center", "tencrop"):
            if self.stored_at_crop:
                source = F.pad(images, (PADDING,) * 4)  # ten-crop of 28-32 px images: our reading (module doc)
            else:
                source = v2.functional.resize(images, [self.resize or resize_side(self.crop)], antialias=True)
            if self.protocol == "center":
                return [v2.functional.center_crop(source, [self.crop])[:, None]]
            crops = torch.stack(v2.functional.five_crop(source, [self.crop]), 1)
            return [torch.cat([crops, crops.flip(-1)], 1)]
        rescaled = [v2.functional.resize(images, [q], antialias=True) for q in self.scales]
        if self.protocol == "multicrop":
            return [torch.cat([self._grid(x) for x in rescaled], 1)]
        return [torch.stack([x, x.flip(-1)], 1) for x in rescaled]

    def _grid(self, images: torch.Tensor) -> torch.Tensor:
        """GRID x GRID crops evenly spaced from corner to corner, then their flips: (B, 2 * GRID^2, C, c, c)."""
        h, w = images.shape[-2:]
        c = self.crop
        tops = torch.linspace(0, h - c, GRID).round().long().tolist()
        lefts = torch.linspace(0, w - c, GRID).round().long().tolist()
        crops = torch.stack([images[..., t : t + c, l : l + c] for t in tops for l in lefts], 1)
        return torch.cat([crops, crops.flip(-1)], 1)


def make_views(
    protocol: str,
    crop: int,
    scales: Sequence[int] | None = None,
    stored_at_crop: bool = False,
    resize: int | None = None,
) -> Views:
    """A protocol's views, with its default scales, checked against the crop size."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; valid: {', '.join(PROTOCOLS)}")
    if protocol not in SCALED:
        if scales:
            raise ValueError(
                f"scales apply to {', '.join(SCALED)}; {protocol} uses one scale (the image itself for 28-32 px "
                f"data, shorter side {resize or resize_side(crop)} otherwise)"
            )
        return Views(protocol, crop, (), stored_at_crop, resize)
    scales = tuple(scales) if scales else default_scales(protocol, crop)
    if any(q < 1 for q in scales):
        raise ValueError(f"scales are shorter sides in pixels, not {scales}")
    if protocol == "multicrop" and min(scales) < crop:
        raise ValueError(
            f"multi-crop cuts {crop}x{crop} crops (the training size) from the image rescaled to each scale; "
            f"scale {min(scales)} is smaller than the crop: give scales of at least {crop}"
        )
    return Views(protocol, crop, scales, stored_at_crop, resize)


def default_scales(protocol: str, crop: int) -> tuple[int, ...]:
    """The paper's scales for the protocol, in proportion to the crop (the papers' are for 224 crops)."""
    paper = RESNET_SCALES if protocol == "multiscale" else VGG_SCALES
    return tuple(round(q * crop / PAPER_CROP) for q in paper)


def network_for(model: nn.Module, protocol: str, scales: Sequence[int] = ()) -> nn.Module:
    """The network a protocol runs: the VGG's dense form for whole images, else the model itself."""
    if protocol not in ("dense", "multiscale"):
        return model
    from .models.vgg import VGG

    if not isinstance(model, VGG):
        return model  # a ResNet's global average pool makes it fully convolutional as it is (ResNet Sec. 3.4)
    if model.head != "imagenet":
        raise ValueError(
            f"{protocol} evaluation runs the paper's VGG head as convolutions (FC6 a 7x7 conv, VGG Sec. 3.2); this "
            f"VGG has the small-image head, whose global average pool comes before its FC layers, so it has no "
            f"dense form: use --protocol center, tencrop or multicrop"
        )
    if min(scales, default=PAPER_CROP) < PAPER_CROP:
        raise ValueError(
            f"the dense form of the paper's VGG needs images of at least {PAPER_CROP} px (FC6 is a 7x7 conv over "
            f"the 7x7 map of a {PAPER_CROP} image); scale {min(scales)} is smaller"
        )
    return model.dense().train(model.training)  # a new module: it takes the model's mode, not train()'s default


@torch.no_grad()
def average_scores(
    net: nn.Module,
    groups: Sequence[torch.Tensor],
    preprocessing: Preprocessing,
    batch_pixels: int,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
) -> torch.Tensor:
    """Soft-max class posteriors (B, K) averaged over every view in ``groups`` (each (B, V, C, h, w) uint8),
    in forward passes of at most ``batch_pixels`` pixels (at least one view)."""
    device = torch.device(device)
    total, count = None, 0
    for group in groups:
        b, v = group.shape[:2]
        step = max(1, batch_pixels // (group.shape[-2] * group.shape[-1]))
        probs = []
        for part in group.flatten(0, 1).split(step):
            with autocast(device, precision):
                logits = net(preprocessing.normalise(part.to(device, non_blocking=True)))
            probs.append(logits.float().softmax(1))
        summed = torch.cat(probs).view(b, v, -1).sum(1)
        total = summed if total is None else total + summed
        count += v
    if total is None:
        raise ValueError("no views to score")
    return total / count


# Evaluating a split --------------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate_protocol(
    model: nn.Module,
    data: Data,
    split: str,
    protocol: str,
    preprocessing: Preprocessing | None = None,
    *,
    scales: Sequence[int] | None = None,
    batch_size: int = 128,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    workers: int | None = None,
    progress: bool = False,
) -> EvalResult:
    """Top-1 and top-5 error (fractions) and loss of ``model`` over ``split`` of ``data`` under ``protocol``.

    The loss is the mean negative log of the averaged posterior of the true class (the cross-entropy, for one
    view). ``preprocessing`` defaults to the data's own (its mean and sizes); a run's or torchvision's may be
    given. ``batch_size`` counts images of the training size: a forward pass holds that many pixels.
    """
    if not data.sizes.get(split, 0):
        trained_on_all = (
            " (a run trained with --val-size 0 holds none: evaluate --split test)" if split == "val" else ""
        )
        raise ValueError(f"nothing to evaluate: the {split} split is empty{trained_on_all}")
    device = torch.device(device)
    prep = preprocessing or Preprocessing.from_data(data)
    check_fits(model, data, prep)
    views = make_views(protocol, prep.image_size, scales, data.in_memory, None if data.in_memory else prep.resize)
    net = network_for(model, protocol, views.scales)
    batch_pixels = batch_size * prep.image_size**2
    was_training = model.training
    model.eval()
    net.eval()
    tally = Tally(device)
    bar = _progress(data.sizes[split], progress)
    try:
        for groups, y in view_batches(data, split, views, batch_pixels, device, workers):
            probs = average_scores(net, groups, prep, batch_pixels, device, precision)
            log_probs = probs.clamp_min(torch.finfo(probs.dtype).tiny).log()
            tally.add(log_probs, y.to(device))
            if bar is not None:
                bar.update(len(y))
    finally:
        model.train(was_training)
        if bar is not None:
            bar.close()
    # the split is not empty (checked above): nothing counted means --skip-bad skipped every image of it
    counted = tally.result(f"nothing to evaluate: every image of the {split} split was unreadable and skipped")
    return dataclasses.replace(counted, split=split, protocol=protocol, scales=list(views.scales) or None,
                               views_per_image=views.per_image)  # fmt: skip


def view_batches(
    data: Data, split: str, views: Views, batch_pixels: int, device: torch.device, workers: int | None = None
) -> Iterator[tuple[list[torch.Tensor], torch.Tensor]]:
    """(view groups, labels) for the images of ``split``, as many images at a time as ``batch_pixels`` allows.

    In memory the images are cut on ``device``, a batch at a time. Image folders are decoded and cut in
    DataLoader workers, image by image (they differ in size); crops of several images then go together.
    """
    dataset = data.images(split)
    channels = data.in_channels
    if data.in_memory:
        images, labels = dataset.images, dataset.labels
        if len(images) == 0:
            return
        per_image = sum(group[0].numel() for group in views(images[:1].to(device))) // channels
        step = max(1, batch_pixels // per_image)
        for i in range(0, len(images), step):
            yield views(images[i : i + step].to(device, non_blocking=True)), labels[i : i + step]
        return
    step = max(1, batch_pixels // (views.per_image * views.crop**2)) if views.same_size else 1
    if workers is None:
        workers = getattr(data, "workers", 0)
    loader = DataLoader(dataset, batch_size=step, collate_fn=_Collate(views), num_workers=workers)
    yield from worker_errors(loader)


@dataclass(frozen=True)
class _Collate:
    """Cuts each image's views in the DataLoader worker and joins the images' groups (a picklable callable)."""

    views: Views

    def __call__(self, samples: list[tuple[torch.Tensor, int]]) -> tuple[list[torch.Tensor], torch.Tensor]:
        per_image = [self.views(image[None]) for image, _ in samples]
        groups = [torch.cat(parts) for parts in zip(*per_image)]
        return groups, torch.tensor([label for _, label in samples], dtype=torch.int64)


def check_fits(model: nn.Module, data: Data, prep: Preprocessing) -> None:
    """Refuse data the model cannot take, naming both sides."""
    channels = input_channels(model)
    if channels is not None and channels != data.in_channels:
        raise ValueError(f"the model takes {channels}-channel images, {data.name}'s are {data.in_channels}-channel")
    if prep.in_channels != data.in_channels:
        raise ValueError(
            f"the model was trained on {prep.in_channels}-channel images, {data.name}'s are {data.in_channels}-channel"
        )
    classes = output_classes(model)
    if classes is not None and classes != data.num_classes:
        raise ValueError(
            f"the model has {classes} outputs but {data.name} has {data.num_classes} classes: "
            f"evaluate it on the data set it was trained for"
        )
    if data.in_memory and data.image_size != prep.image_size:
        raise ValueError(
            f"the model was trained on {prep.image_size} px images, {data.name}'s are {data.image_size} px: evaluate "
            f"it on the data set it was trained for"
        )


def _progress(total: int, enabled: bool):
    if not (enabled and sys.stderr.isatty()):
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="img", file=sys.stderr, dynamic_ncols=True)


def parse_scales(text: str | None) -> tuple[int, ...] | None:
    """``"256,384,512"`` -> (256, 384, 512)."""
    if not text:
        return None
    try:
        scales = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(
            f"--scales takes shorter sides in pixels separated by commas, e.g. 256,384,512; not {text!r}"
        ) from None
    return scales or None


def format_result(result: EvalResult, model: str, data: str) -> str:
    scales = f" at {', '.join(map(str, result.scales))}" if result.scales else ""
    views = "1 view" if result.views_per_image == 1 else f"{result.views_per_image} views"
    return (
        f"{model} on {data} {result.split}, {result.protocol}{scales} ({views} per image, "
        f"{result.images:,} images): top-1 error {100 * result.error:.2f}%, "
        f"top-5 error {100 * result.top5_error:.2f}%"
    )
