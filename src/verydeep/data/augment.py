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


def rescale_crop_flip(
    images: torch.Tensor, sides: torch.Tensor, top: torch.Tensor, left: torch.Tensor, flip: torch.Tensor
) -> torch.Tensor:
    """Rescale each image of a float (B, C, H, W) batch to sides[b] x sides[b] (bilinear, as ``F.interpolate``
    with align_corners=False), take the H x W window at (top[b], left[b]) and mirror it where flip[b].

    One affine grid for the batch: output pixel j of image b reads the rescaled image at left[b] + j, that is
    the original at (left[b] + j + 0.5) W / S - 0.5, so the grid is u -> (W / S) u + (2 left + W) / S - 1 in
    normalised coordinates, its scale negated for a mirrored crop.
    """
    b, c, h, w = images.shape
    s = sides.to(images.device, images.dtype)
    theta = torch.zeros(b, 2, 3, dtype=images.dtype, device=images.device)
    theta[:, 0, 0] = torch.where(flip.to(images.device), -w / s, w / s)
    theta[:, 0, 2] = (2 * left.to(s) + w) / s - 1
    theta[:, 1, 1] = h / s
    theta[:, 1, 2] = (2 * top.to(s) + h) / s - 1
    grid = F.affine_grid(theta, [b, c, h, w], align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_rescale_crop_flip(
    images: torch.Tensor,
    generator: torch.Generator,
    sides: tuple[int, int],
    *,
    drawn_for: int | None = None,
    rows: slice = slice(None),
) -> torch.Tensor:
    """VGG's scale jittering (Sec. 3.1) at any size: each image rescaled to S x S with S drawn uniformly from the
    whole sides in [sides[0], sides[1]], a crop of the batch's own size at a random place, a random mirror.
    ``drawn_for`` and ``rows`` as in ``random_crop_flip``."""
    n = images.shape[0] if drawn_for is None else drawn_for
    low, high = sides
    h, w = images.shape[-2:]
    if low < max(h, w):
        raise ValueError(f"scale jittering's smallest side {low} is below the images' {h}x{w}: no crop fits in it")
    s = torch.randint(low, high + 1, (n,), generator=generator)
    where = torch.rand(2, n, generator=generator, dtype=torch.float64)
    top = (where[0] * (s - h + 1)).floor().long()
    left = (where[1] * (s - w + 1)).floor().long()
    flips = torch.randint(0, 2, (n,), generator=generator).bool()
    s, top, left, flips = s[rows], top[rows], left[rows], flips[rows]
    if s.shape[0] != images.shape[0]:
        raise ValueError(f"rows {rows} of {n} draws are {s.shape[0]} images, not the {images.shape[0]} given")
    return rescale_crop_flip(images, s, top, left, flips)


def test_side(sides: tuple[int, int]) -> int:
    """VGG's test scale Q for a net trained with S in [Smin, Smax]: 0.5 (Smin + Smax) (Sec. 4.1)."""
    return round((sides[0] + sides[1]) / 2)


def rescale(images: torch.Tensor, side: int) -> torch.Tensor:
    """A float batch rescaled to side x side (bilinear): test scale Q for a net trained with scale jittering."""
    if images.shape[-1] == side and images.shape[-2] == side:
        return images
    return F.interpolate(images, size=(side, side), mode="bilinear", align_corners=False)
