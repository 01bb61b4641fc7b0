"""Generated images for tests and benchmarks: learnable, deterministic, made in a fraction of a second at 32 px.

Each class has its own fixed random low-frequency RGB pattern; an image is its class's pattern plus pixel
noise, so a network (even a linear one) can learn the classes, and nothing has to be on disk.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Sampling, generator
from .memory import TensorData, TensorImages

NAME = "synthetic"
NUM_CLASSES = 10
LARGE = 128  # from this side on, fewer images: 224 px takes 154 MB in all


def sizes(image_size: int) -> dict[str, int]:
    if image_size >= LARGE:
        return {"train": 512, "val": 256, "test": 256}
    return {"train": 2560, "val": 512, "test": 512}


def patterns(image_size: int, seed: int) -> torch.Tensor:
    """(classes, 3, S, S) pixel values in [51, 204]: 4x4 random colours, bilinearly upsampled."""
    coarse = torch.rand(NUM_CLASSES, 3, 4, 4, generator=generator("synthetic patterns", seed))
    upsampled = F.interpolate(coarse, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return (0.2 + 0.6 * upsampled) * 255


def generate(count: int, class_patterns: torch.Tensor, seed: object, noise: float = 0.15) -> TensorImages:
    """``count`` images with balanced labels in shuffled order, uint8 (count, 3, S, S).

    The noise (std ``noise`` * 255) comes in square blocks of S // 32 pixels: the random numbers, the slow
    part, then number 3 x 32 x 32 per image at any size (224 px: 2 s instead of 7 s on two CPU cores).
    """
    rng = generator("synthetic images", seed)
    labels = torch.arange(count) % NUM_CLASSES
    labels = labels[torch.randperm(count, generator=rng)]
    size = class_patterns.shape[-1]
    blocks = -(-size // max(1, size // 32))
    chunks = []
    for part in labels.split(64):  # bounds the float32 intermediates at 224 px to about 40 MB each
        pixel_noise = torch.randn(len(part), 3, blocks, blocks, generator=rng) * (noise * 255)
        x = class_patterns[part] + F.interpolate(pixel_noise, size=(size, size), mode="nearest")
        chunks.append(x.round_().clamp_(0, 255).to(torch.uint8))
    return TensorImages(torch.cat(chunks), labels, torch.arange(count))


def load(image_size: int | None, sampling: Sampling) -> TensorData:
    """Train / val / test drawn from separate streams of the same classes; ``split_seed`` fixes everything."""
    size = 32 if image_size is None else image_size
    if size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, not {size}")
    counts = sizes(size)
    if sampling.val_size is not None:
        counts["val"] = sampling.val_size
    if sampling.subset is not None:
        counts["train"] = sampling.subset
        counts["val"] = min(counts["val"], sampling.val_cap())
    split_seed = sampling.split_seed
    class_patterns = patterns(size, split_seed)
    splits = {split: generate(n, class_patterns, (split_seed, split)) for split, n in counts.items()}
    classes = [f"pattern{i}" for i in range(NUM_CLASSES)]
    return TensorData(NAME, classes, splits, sampling.mean, source=f"generated, {size} px, split_seed {split_seed}")
