"""Running a trained model on image files: decode, preprocess as its training did, top classes by name.

The preprocessing is the model's own (``evaluate.Preprocessing``): a run's mean, image size and classes from
its config.json, or torchvision's ImageNet transform and class names for torchvision's weights. A file that
cannot be read is reported by name and the others are still predicted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .data import imagefolder
from .device import autocast
from .trained import Preprocessing, Trained

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
    """uint8 (channels, H, W) from an image file, the camera's rotation applied (``data.imagefolder.read_image``).
    Raises ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ValueError(f"{path} {what}; give image files ({READABLE})")
    try:
        return imagefolder.read_image(path, channels, exif_orientation=True)
    except ValueError as error:
        raise ValueError(f"{error}; give a {READABLE} file, or convert it to one") from None


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
