"""ImageNet-style folders: PATH/train/<class>/<image>, PATH/val/<class>/<image>, optionally PATH/test/<class>/.

Files are listed by torchvision's DatasetFolder machinery, decoded by torchvision.io and transformed by
transforms.v2 in DataLoader workers, one batch per worker task so that the batch's random numbers can be
seeded by its index. Training follows both papers: scale jittering (shorter side S ~ U[scale]; VGG Sec. 3.1
uses [256, 512], ResNet Sec. 3.4 [256, 480]), a random crop, a horizontal flip, then AlexNet's PCA colour
shift on the float batch on the device. Evaluation is the single-centre-crop protocol: shorter side resized
to round(image_size * 256 / 224), centre crop of image_size.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.datasets.folder import find_classes, make_dataset
from torchvision.io import ImageReadMode, decode_image, read_file
from torchvision.transforms import v2

from .augment import pca_lighting, resize_side
from .base import (
    BatchPlan,
    Data,
    Files,
    MeanKind,
    Sampling,
    derive_seed,
    generator,
    mean_from_sum,
    rank_batches,
    to_float,
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp")  # what torchvision.io.decode_image reads
MEAN_SAMPLE = 2000  # training images the mean is estimated from
LAYOUT = "train/ and val/ folders (optionally test/) with one sub-folder of images per class, as ImageNet's"
SKIP_HINT = "pass --skip-bad (load_data(..., skip_bad=True)) to skip and count such files"


def is_image_folder(path: Path) -> bool:
    return (path / "train").is_dir() and (path / "val").is_dir()


def default_workers() -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, min(8, cpus - 1))


def read_image(path: str | Path, channels: int = 3, exif_orientation: bool = False) -> torch.Tensor:
    """uint8 (channels, H, W) from a JPEG, PNG, GIF or WebP file: colour converted to grey for one channel, grey,
    CMYK and palette files to RGB for three, 16-bit PNGs scaled to 8 bits, a GIF's first frame; with
    ``exif_orientation``, the camera's rotation applied. Raises ValueError naming the file and the reason."""
    mode = ImageReadMode.GRAY if channels == 1 else ImageReadMode.RGB
    try:
        with warnings.catch_warnings():
            # torchvision 0.29 deprecates its decoders in favour of TorchCodec; they are still the ones we support
            warnings.simplefilter("ignore", DeprecationWarning)
            image = decode_image(read_file(str(path)), mode=mode, apply_exif_orientation=exif_orientation)
    except RuntimeError as error:
        raise ValueError(f"cannot read {path} as an image ({_reason(error)})") from error
    if image.dim() == 4:  # an animated GIF: its frames
        image = image[0]
    return image if image.dtype == torch.uint8 else v2.functional.to_dtype(image, torch.uint8, scale=True)


def _reason(error: Exception) -> str:
    """The decoder's first sentence, without its C++ source location."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return re.sub(r"^.*?\.(?:cpp|h):\d+,?\s*", "", text).split(". ")[0].rstrip(".") or text


def read_sample(path: str, channels: int = 3) -> torch.Tensor:
    try:
        return read_image(path, channels)
    except ValueError as error:
        raise ValueError(f"{error}; remove it, or {SKIP_HINT}") from None


def worker_errors(loader: Iterable) -> Iterator:
    """A DataLoader's items, with an unreadable file a worker met raised as the worker's own one-line error
    (naming the file and --skip-bad) rather than wrapped in the worker's traceback."""
    items = iter(loader)
    while True:
        try:
            item = next(items)
        except StopIteration:
            return
        except ValueError as error:
            text = str(error).rstrip()
            if not text.startswith("Caught ValueError in DataLoader worker"):
                raise
            raise ValueError(text.splitlines()[-1].removeprefix("ValueError: ")) from None
        yield item


class ImageFiles(Dataset):
    """(uint8 image (3, H, W) at its original size, int label) for each file: ``Data.images``. An undecodable
    file raises even with skip_bad, which can only drop it from a batch, not from a map-style dataset."""

    def __init__(self, samples: list[tuple[str, int]]):
        self.samples = samples

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        return read_sample(path), label


class _Batches(Dataset):
    """Item (seed, indices) -> one batch (uint8 (B, 3, S, S), int64 labels, paths skipped as unreadable)."""

    def __init__(self, samples: list[tuple[str, int]], transform: v2.Transform, size: int, skip_bad: bool):
        self.samples, self.transform, self.size, self.skip_bad = samples, transform, size, skip_bad

    def __getitem__(self, key: tuple[int, list[int]]) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        seed, indices = key
        images, labels, bad = [], [], []
        # v2's random transforms draw from torch's global generator; fork_rng leaves the caller's untouched
        # when there are no workers
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            for i in indices:
                path, label = self.samples[i]
                try:
                    image = read_sample(path)
                except ValueError:
                    if not self.skip_bad:
                        raise
                    bad.append(path)
                    continue
                images.append(self.transform(image))
                labels.append(label)
        x = torch.stack(images) if images else torch.empty((0, 3, self.size, self.size), dtype=torch.uint8)
        return x, torch.tensor(labels, dtype=torch.int64), bad


def folder_splits(root: Path, classes: list[str], sampling: Sampling, skip_bad: bool,
                  listed: tuple[dict, list[str]] | None = None,
                  ) -> tuple[dict[str, list[tuple[str, int]]], list[str], list[str]]:  # fmt: skip
    """Each split's (file, label) samples, cut to ``subset`` training and ``val_size`` validation images (a
    fixed random choice); the files that are not images; notes on what stands in for what. ``listed``: the
    folder's listing (``list_folder``) when the caller has it already."""
    samples, others = list_folder(root, classes) if listed is None else listed
    samples = dict(samples)
    if others and not skip_bad:
        shown = "; ".join(others[:5]) + ("; ..." if len(others) > 5 else "")
        raise ValueError(
            f"{len(others)} file(s) in {root} are not images (by extension; {' '.join(IMAGE_EXTENSIONS)} are "
            f"read): {shown}. Remove them, or {SKIP_HINT}"
        )
    notes = []
    if "test" not in samples:
        samples["test"] = samples["val"]
        notes.append(f"{root} has no test/ folder: the test split is val/ (the papers report ImageNet val)")
    val_size, subset, split_seed = sampling.val_size, sampling.subset, sampling.split_seed
    if subset is not None:
        if subset > len(samples["train"]):
            raise ValueError(
                f"subset={subset:,} is more than the {len(samples['train']):,} images in {root}/train; pass a "
                f"smaller subset"
            )
        samples["train"] = _sample(samples["train"], subset, (split_seed, "train"))
        val_size = min(len(samples["val"]) if val_size is None else val_size, sampling.val_cap())
    if val_size is not None:
        samples["val"] = _sample(samples["val"], val_size, (split_seed, "val"))
    return samples, others, notes


class FolderData(Data):
    """Image files on disk, decoded and transformed in ``workers`` DataLoader processes."""

    def __init__(self, root: Path, sampling: Sampling, files: Files):
        size = 224 if files.image_size is None else files.image_size
        scale = files.scale
        low, high = scale
        if not size <= low <= high:
            raise ValueError(
                f"scale must be (low, high) with image_size={size} <= low <= high, not {scale}: the random "
                f"{size} crop is cut from the image with its shorter side resized to a size in that range"
            )
        classes = folder_classes(root / "train")
        samples, others, notes = folder_splits(root, classes, sampling, files.skip_bad)
        self.workers = default_workers() if files.workers is None else files.workers
        self.color_jitter = files.color_jitter
        self.skip_bad = files.skip_bad
        self._samples = samples
        self._non_images = others
        self._bad: set[str] = set()
        self._eval_transform = v2.Compose([v2.Resize(resize_side(size)), v2.CenterCrop(size)])
        self._train_transform = v2.Compose(
            [v2.RandomShortestSize(list(range(low, high + 1))), v2.RandomCrop(size), v2.RandomHorizontalFlip()]
        )
        self.image_size = size
        super().__init__(
            name=root.resolve().name,
            classes=classes,
            in_channels=3,
            image_size=size,
            mean=self._sample_mean(sampling.mean, sampling.split_seed),
            sizes={split: len(files) for split, files in samples.items()},
            source=str(root),
            notes=notes,
        )

    @property
    def skipped(self) -> int:
        return len(self._non_images) + len(self._bad) if self.skip_bad else 0

    def images(self, split: str) -> ImageFiles:
        return ImageFiles(self._samples[self._check_split(split)])

    def _sample_mean(self, kind: MeanKind, split_seed: int) -> torch.Tensor:
        """The mean of up to MEAN_SAMPLE training images (a fixed sample) through the evaluation transform."""
        sample = _sample(self._samples["train"], MEAN_SAMPLE, (split_seed, "mean"))
        tasks = [(0, list(range(i, min(i + 64, len(sample))))) for i in range(0, len(sample), 64)]
        total = torch.zeros(3, self.image_size, self.image_size, dtype=torch.int64)
        count = 0
        for x, _, bad in self._loader(sample, tasks, self._eval_transform, pin=False):
            self._bad.update(bad)
            total += x.sum(0, dtype=torch.int64)
            count += len(x)
        return mean_from_sum(total, count, kind)

    def _loader(
        self, samples: list[tuple[str, int]], tasks: list[tuple[int, list[int]]], transform: v2.Transform, pin: bool
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, list[str]]]:
        dataset = _Batches(samples, transform, self.image_size, self.skip_bad)
        return worker_errors(
            DataLoader(dataset, batch_size=None, sampler=tasks, num_workers=self.workers, pin_memory=pin)
        )

    def _generate(self, plan: BatchPlan) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # Each worker task decodes and crops only this rank's images, so its draws are seeded per rank too.
        keys, device = (*plan.keys, plan.rank), plan.device
        batches = list(rank_batches(plan))
        tasks = [(derive_seed("augment", *keys, k), index.tolist()) for k, index, _ in batches]
        transform = self._train_transform if plan.augment else self._eval_transform
        mean = self.mean.to(device)
        loader = self._loader(self._samples[plan.split], tasks, transform, pin=device.type == "cuda")
        for (k, _, _), (x, y, bad) in zip(batches, loader):
            self._bad.update(bad)
            if len(y) == 0:  # every file of the batch was unreadable
                if plan.world_size > 1:
                    # skipping the step on this rank alone would leave the others waiting in all-reduce
                    raise ValueError(
                        f"every image of a batch on rank {plan.rank} is unreadable ({', '.join(bad[:3])}); distributed "
                        "training cannot skip a step on one rank: remove the unreadable files and resume"
                    )
                continue
            x = to_float(x.to(device, non_blocking=True), mean, plan.channels_last)
            if plan.augment and self.color_jitter:
                pca_lighting(x, generator("lighting", *keys, k))
            yield x, y.to(device, non_blocking=True)


def folder_classes(train: Path) -> list[str]:
    classes = [name for name in find_classes(train)[0] if not name.startswith(".")] if train.is_dir() else []
    if not classes:
        raise ValueError(f"{train} has no class folders; expected {LAYOUT}")
    return classes


def list_folder(root: Path, classes: list[str]) -> tuple[dict[str, list[tuple[str, int]]], list[str]]:
    """Each split's (image path, label) pairs, and the paths that are not images. Files and folders whose name
    starts with '.' are left out silently (.DS_Store, .ipynb_checkpoints)."""
    class_to_idx = {name: i for i, name in enumerate(classes)}
    samples, others = {}, []
    for split in ("train", "val", "test"):
        folder = root / split
        if not folder.is_dir():
            continue
        found = {entry.name for entry in folder.iterdir() if entry.is_dir() and not entry.name.startswith(".")}
        unknown = sorted(found - set(classes))
        if unknown:
            raise ValueError(
                f"{folder} has class folders that train/ lacks: {', '.join(unknown[:10])}; every class needs "
                f"training images ({LAYOUT})"
            )

        start = len(os.path.join(str(folder), ""))

        def visible(path: str, start: int = start) -> bool:  # strings, not Paths: this runs once per file
            return not any(part.startswith(".") for part in path[start:].split(os.sep))

        files = make_dataset(str(folder), class_to_idx, is_valid_file=visible, allow_empty=True)
        samples[split] = [(path, label) for path, label in files if path.lower().endswith(IMAGE_EXTENSIONS)]
        others += [path for path, _ in files if not path.lower().endswith(IMAGE_EXTENSIONS)]
    empty = sorted(set(classes) - {classes[label] for _, label in samples["train"]})
    if empty:
        raise ValueError(f"{root}/train has class folders with no images: {', '.join(empty[:10])}; add or remove them")
    return samples, others


def _sample(samples: list[tuple[str, int]], count: int, seed: object) -> list[tuple[str, int]]:
    """A fixed random ``count`` of ``samples``, in their listed order."""
    if count >= len(samples):
        return samples
    keep = torch.randperm(len(samples), generator=generator("sample", seed))[:count].sort().values
    return [samples[i] for i in keep.tolist()]
