"""Batched augmentation on tensors already on the device: one call per batch, no per-image Python.

The random numbers are drawn from a CPU ``torch.Generator`` and moved to the batch's device (a few bytes), so
a batch is augmented identically on the CPU and on a GPU, and a resumed run redraws the same numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

PADDING = 4  # ResNet Sec. 4.2: "4 pixels are padded on each side" of the 32 px training images, then cropped
PAPER_CROP = 224  # both papers' network input


def resize_side(crop: int) -> int:
    """The shorter side an image is rescaled to before its centre crop or ten crops: 256 for the papers' 224
    (AlexNet's and ResNet's 10-crop testing), in the same ratio for other crops."""
    return round(crop * 256 / PAPER_CROP)


# AlexNet's PCA of ImageNet's RGB pixels (Krizhevsky et al. 2012, Sec. 4.1), for pixels in [0, 1], as published
# with fb.resnet.torch; both papers use this colour shift (VGG Sec. 3.1, ResNet Sec. 3.4).
IMAGENET_EIGVAL = torch.tensor([0.2175, 0.0188, 0.0045])
IMAGENET_EIGVEC = torch.tensor(
    [
        [-0.5675, 0.7192, 0.4009],
        [-0.5808, -0.0045, -0.8140],
        [-0.5836, -0.6948, 0.4203],
    ]
)


def crop_flip(
    images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor, padding: int
) -> torch.Tensor:
    """Zero-pad each image of (B, C, H, W) by ``padding``, take the H x W window at (top[b], left[b]) of the
    padded image and mirror it where flip[b]. Any dtype.

    One gather does crop and flip together: the flip only reverses the columns the crop reads, and the index
    into the flattened padded plane is shared by the channels (3-4x faster on a CPU than indexing
    ``padded[b, :, rows, cols]``).
    """
    b, c, h, w = images.shape
    padded = F.pad(images, (padding,) * 4).flatten(2)
    rows = top[:, None] + torch.arange(h, device=images.device)
    cols = torch.arange(w, device=images.device)
    cols = torch.where(flip[:, None], w - 1 - cols, cols) + left[:, None]
    index = (rows[:, :, None] * (w + 2 * padding) + cols[:, None, :]).flatten(1)
    return padded.gather(2, index[:, None, :].expand(b, c, h * w)).view(b, c, h, w)


def random_crop_flip(
    images: torch.Tensor,
    generator: torch.Generator,
    padding: int = 4,
    *,
    drawn_for: int | None = None,
    rows: slice = slice(None),
) -> torch.Tensor:
    """ResNet's CIFAR augmentation (Sec. 4.2): "4 pixels are padded on each side, and a 32x32 crop is randomly
    sampled from the padded image or its horizontal flip". Zero padding, as torchvision's RandomCrop does on
    the uint8 image; run it before the float conversion, where it moves a quarter of the bytes.

    The numbers are drawn for ``drawn_for`` images (default: these) and ``rows`` of them are used: a rank of a
    distributed job draws for the whole global batch and takes its own rows, so that N ranks augment every
    image exactly as one process taking the global batch does (a few bytes more to draw).
    """
    n = images.shape[0] if drawn_for is None else drawn_for
    # one host-to-device copy for all of them: rows 0 and 1 are the offsets, row 2 the flips
    offsets = torch.randint(0, 2 * padding + 1, (2, n), generator=generator)
    flips = torch.randint(0, 2, (1, n), generator=generator)
    params = torch.cat([offsets, flips])[:, rows]
    if params.shape[1] != images.shape[0]:
        raise ValueError(f"rows {rows} of {n} draws are {params.shape[1]} images, not the {images.shape[0]} given")
    params = params.to(images.device, non_blocking=True)
    return crop_flip(images, params[0], params[1], params[2].bool(), padding)


def pca_lighting(images: torch.Tensor, generator: torch.Generator, std: float = 0.1) -> torch.Tensor:
    """AlexNet's colour shift, in place on a float RGB batch (B, 3, H, W) in [0, 1] units: each image gets
    eigvec @ (alpha * eigval) added to every pixel, alpha ~ N(0, std^2) per image and component.

    The shift is the same at every pixel, so it may come before or after the mean subtraction.
    """
    if images.shape[1] != 3:
        raise ValueError(f"PCA lighting needs RGB images (B, 3, H, W), got shape {tuple(images.shape)}")
    alpha = torch.randn(images.shape[0], 3, generator=generator) * std
    shift = (alpha * IMAGENET_EIGVAL) @ IMAGENET_EIGVEC.T
    return images.add_(shift.to(images.device, images.dtype, non_blocking=True)[:, :, None, None])
