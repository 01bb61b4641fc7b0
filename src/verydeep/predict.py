"""Running a trained model on image files: decode, preprocess as its training did, top classes by name.

The preprocessing is the model's own (``evaluate.Preprocessing``): a run's mean, image size and classes from
its config.json, or torchvision's ImageNet transform and class names for torchvision's weights. A file that
cannot be read is reported by name and the others are still predicted.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms import v2

from .device import autocast
from .evaluate import Preprocessing, Trained

READABLE = "JPEG, PNG, GIF or WebP"  # what torchvision.io.decode_image reads


@dataclass(frozen=True)
class Prediction:
    """One file's top classes as (class index, name, probability), most probable first; or why it failed."""

    file: str
    top: tuple[tuple[int, str, float], ...] = ()
    error: str | None = None

    def to_dict(self) -> dict:
        if self.error is not None:
            return {"file": self.file, "error": self.error}
        return {
            "file": self.file,
            "predictions": [{"class": name, "index": i, "probability": p} for i, name, p in self.top],
        }


def read_image(path: str | Path, channels: int) -> torch.Tensor:
    """uint8 (channels, H, W) from a JPEG, PNG, GIF or WebP file: colour converted to grey for one-channel
    models and grey to RGB for three, EXIF rotation applied, 16-bit PNGs scaled to 8 bits, a GIF's first frame.
    Raises ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ValueError(f"{path} {what}; give image files ({READABLE})")
    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    try:
        with warnings.catch_warnings():
            # torchvision 0.29 deprecates its decoders in favour of TorchCodec; they are still the ones we support
            warnings.simplefilter("ignore", DeprecationWarning)
            image = decode_image(read_file(str(path)), mode=mode, apply_exif_orientation=True)
    except RuntimeError as error:
        raise ValueError(
            f"cannot read {path} as an image ({_reason(error)}); give a {READABLE} file, or convert it to one"
        ) from error
    if image.dim() == 4:  # an animated GIF: its frames
        image = image[0]
    return image if image.dtype == torch.uint8 else v2.functional.to_dtype(image, torch.uint8, scale=True)


def _reason(error: Exception) -> str:
    """The decoder's first sentence, without its C++ source location."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return re.sub(r"^.*?\.(?:cpp|h):\d+,?\s*", "", text).split(". ")[0].rstrip(".") or text


@torch.no_grad()
def predict(
    model: nn.Module,
    preprocessing: Preprocessing,
    files: Sequence[str | Path],
    topk: int = 5,
    device: torch.device | str = "cpu",
    precision: str = "fp32",
    batch_size: int = 64,
) -> list[Prediction]:
    """The ``topk`` most probable classes of each file, in the order given; unreadable files carry an error."""
    if topk < 1:
        raise ValueError(f"topk must be at least 1, not {topk}")
    device = torch.device(device)
    results: list[Prediction | None] = []
    readable: list[tuple[int, torch.Tensor]] = []
    for file in files:
        try:
            image = preprocessing.prepare(read_image(file, preprocessing.in_channels))
        except ValueError as error:
            results.append(Prediction(str(file), error=str(error)))
            continue
        readable.append((len(results), image))
        results.append(None)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(readable), batch_size):
            chunk = readable[start : start + batch_size]
            x = preprocessing.normalise(torch.stack([image for _, image in chunk]).to(device))
            with autocast(device, precision):
                probs = model(x).float().softmax(1)
            if probs.shape[1] != len(preprocessing.classes):
                raise ValueError(
                    f"the model has {probs.shape[1]} outputs but {len(preprocessing.classes)} class names were given"
                )
            values, indices = probs.topk(min(topk, probs.shape[1]), dim=1)
            for (slot, _), p, k in zip(chunk, values.tolist(), indices.tolist()):
                top = tuple((i, preprocessing.classes[i], q) for i, q in zip(k, p))
                results[slot] = Prediction(str(files[slot]), top)
    finally:
        model.train(was_training)
    return [r for r in results if r is not None]


def format_prediction(prediction: Prediction) -> str:
    lines = [prediction.file]
    lines += [f"  {100 * p:6.2f}%  {name}" for _, name, p in prediction.top]
    return "\n".join(lines)


def preprocessing_of(trained: Trained) -> Preprocessing:
    """A trained model's preprocessing, or an error saying where it is recorded."""
    if trained.preprocessing is None:
        raise ValueError(
            f"{trained.weights} holds verydeep weights away from their run folder, whose config.json records the "
            f"mean, image size and class names: pass --run DIR, or keep the file in its run folder"
        )
    return trained.preprocessing
