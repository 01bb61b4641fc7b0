"""A trained network and what feeds it: its preprocessing (a run's mean, image size and classes, or torchvision's
ImageNet transform), the run folder or weights file it came from, and the data it is evaluated on. Evaluation,
prediction and export all load a trained model from here."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn
from torchvision.transforms import v2

from .data import DATASETS, NATIVE_SIZE, load_data
from .data.augment import resize_side
from .data.base import Data
from .models.layers import output_classes
from .recipes import get_recipe
from .registry import get_entry
from .runs import RunDir, RunRecord
from .weights import load_weights


@dataclass(frozen=True)
class Preprocessing:
    """How uint8 images become a model's input: what its training did, so that a new image looks the same.

    image_size: the side of the training crops. mean: the training set's, (C, S, S) per pixel or (C, 1, 1) per
    channel, in [0, 1] units. resize: the shorter side a new image is rescaled to before its centre crop.
    std: torchvision's ImageNet weights divide by it; the papers (and so our runs) only subtract the mean.
    """

    image_size: int
    mean: torch.Tensor
    classes: tuple[str, ...]
    resize: int
    std: torch.Tensor | None = None

    @property
    def in_channels(self) -> int:
        return self.mean.shape[0]

    @classmethod
    def from_data(cls, data: Data) -> Preprocessing:
        resize = data.image_size if data.in_memory else resize_side(data.image_size)
        return cls(data.image_size, data.mean, tuple(data.classes), resize)

    @classmethod
    def from_run(cls, record: RunRecord) -> Preprocessing:
        """From a run's config.json, which records the mean, the image size and the classes it trained on."""
        data = record.data
        size = data.image_size
        # Fashion-MNIST, CIFAR and synthetic images are stored at the training size and trained on whole
        resize = size if data.name in DATASETS or data.in_memory else resize_side(size)
        return cls(size, torch.tensor(record.mean, dtype=torch.float32), tuple(data.classes), resize)

    @classmethod
    def torchvision_imagenet(cls, num_classes: int) -> Preprocessing:
        """torchvision's ImageNet preprocessing and class names, for its pretrained weights.

        Every torchvision ImageNet classifier shares the classes and the IMAGENET1K_V1 transform: resize to
        256, centre crop 224, normalise by ImageNet's mean and std. Read from torchvision, no download.
        """
        from torchvision.models import ResNet50_Weights

        weights = ResNet50_Weights.IMAGENET1K_V1
        transform = weights.transforms()
        categories = tuple(weights.meta["categories"])
        classes = categories if num_classes == len(categories) else tuple(f"class {i}" for i in range(num_classes))
        return cls(
            image_size=transform.crop_size[0],
            mean=torch.tensor(transform.mean)[:, None, None],
            classes=classes,
            resize=transform.resize_size[0],
            std=torch.tensor(transform.std)[:, None, None],
        )

    def at_size(self, image_size: int | None) -> Preprocessing:
        """The same preprocessing for crops of side ``image_size`` (None: unchanged), the rescale in proportion
        (a network that ends in global average pooling takes any size; its accuracy is the user's to check)."""
        if image_size is None or image_size == self.image_size:
            return self
        if image_size < 1:
            raise ValueError(f"--image-size must be a positive number of pixels, not {image_size}")
        resize = max(image_size, round(self.resize * image_size / self.image_size))
        return replace(self, image_size=image_size, resize=resize)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (..., C, h, w) -> float32 (images / 255 - mean) [/ std], the training batches' arithmetic."""
        mean = self.mean.to(images.device)
        if mean.shape[-2:] != images.shape[-2:]:
            mean = mean.mean((-2, -1), keepdim=True)  # not a training-size view: the mean colour (module doc)
        x = images.to(torch.float32).div_(255).sub_(mean)
        return x if self.std is None else x.div_(self.std.to(images.device))

    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        """A new uint8 image (C, H, W) at any size -> (C, S, S): shorter side to ``resize``, centre crop."""
        resized = v2.functional.resize(image, [self.resize], antialias=True)
        return v2.functional.center_crop(resized, [self.image_size])


@dataclass
class Trained:
    """A trained network with what is needed to feed it: ``preprocessing`` is None for verydeep weights found
    outside their run folder, whose mean and classes then come from the data."""

    model: nn.Module
    weights: Path
    preprocessing: Preprocessing | None
    run: Path | None = None
    record: RunRecord | None = None  # the run folder's record, when the weights came from one

    @property
    def name(self) -> str:
        return getattr(self.model, "verydeep_name", type(self.model).__name__)


def load_trained(run: str | Path | None = None, weights: str | Path | None = None, model: str | None = None) -> Trained:
    """A run folder's network (model.safetensors, else its last checkpoint.pt), or a weights file: verydeep's
    (the run folder beside it supplies the preprocessing) or torchvision's (ImageNet preprocessing)."""
    if (run is None) == (weights is None):
        raise ValueError("give a run folder (--run DIR) or a weights file (--model NAME --weights FILE), one of them")
    if run is None and RunDir(Path(weights).parent).config.exists():
        run = Path(weights).parent  # a run's own model.safetensors or checkpoint.pt: its config.json describes it
    if run is not None:
        folder = RunDir(run)
        config = folder.read_record()
        path = Path(weights) if weights is not None else folder.latest_weights()  # unfinished: its last checkpoint
        if path is None or not path.exists():
            raise FileNotFoundError(f"{folder.path} has no model.safetensors or checkpoint.pt: no weights saved yet")
        return Trained(load_weights(path, model), path, Preprocessing.from_run(config), folder.path, config)
    path = Path(weights)
    network = load_weights(path, model)
    if path.suffix == ".safetensors" or _is_checkpoint(path):
        return Trained(network, path, None)
    return Trained(network, path, Preprocessing.torchvision_imagenet(output_classes(network)))


def _is_checkpoint(path: Path) -> bool:
    """A verydeep run checkpoint (rather than a torchvision state dict)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return False
    return isinstance(obj, dict) and "verydeep" in obj


def load_eval_data(
    trained: Trained,
    data: str | None = None,
    data_dir: str | None = None,
    workers: int | None = None,
    image_size: int | None = None,
) -> Data:
    """The data a trained model is evaluated on: ``data`` if given, else its run's, split as the run split it
    (same val_size, subset and mean), so that 'val' is the run's val. ``image_size``: a folder's side (default:
    the run's)."""
    config = trained.record
    if config is None:
        if data is None:
            raise ValueError(f"give --data: {trained.weights} does not say which data set it was trained on")
        mean = get_recipe(get_entry(trained.name).recipe).mean
        return load_data(data, data_dir, mean=mean, workers=workers, image_size=image_size)
    train, recipe = config.train, config.recipe
    options = {"mean": recipe.mean, "scale": tuple(recipe.scale), "workers": workers}
    if data is None or (data == train.data and data_dir in (None, train.data_dir)):
        return load_data(
            train.data,
            train.data_dir,
            val_size=train.val_size,
            subset=train.subset,
            image_size=config.data.image_size,
            skip_bad=train.skip_bad,
            **options,
        )
    size = None if data in NATIVE_SIZE else image_size or config.data.image_size
    return load_data(data, data_dir, image_size=size, **options)
