"""Folders of small images (all one size, up to 64 px: CIFAR exported as PNG files, a new benchmark, a
researcher's own set) held in memory like the built-in sets, at their own size and channels.

A sample of file headers tells the size and whether the images are grey. The folder is then decoded once, in
DataLoader workers with a progress bar, into one uint8 tensor, cached on disk (``$VERYDEEP_CACHE``, default
``~/.cache/verydeep``) under a key of every file's path, size and modification time, and reused until a file
changes. It trains as Fashion-MNIST and CIFAR do: batched pad-and-crop augmentation on the device, the recipe's
own mean. A folder that would take more than a quarter of the machine's memory streams from disk instead.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms import v2

from .base import Files, Sampling
from .imagefolder import default_workers, folder_classes, folder_splits, list_folder, read_sample, worker_errors
from .memory import TensorData, TensorImages

SMALL = 64  # images of at most this side are held in memory
PROBED = 48  # files whose headers are read to tell a folder's size and channels
MEMORY_SHARE = 0.25  # a folder that would need more than this share of RAM streams instead
GREY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "P;L"}
CHUNK = 256  # files per decoding task


@dataclass(frozen=True)
class Probe:
    """What a sample of a folder's file headers says: the one size they share (None if they differ or are not
    square) and whether every one is grey."""

    size: int | None
    grey: bool
    files: int  # how many headers were read

    @property
    def small(self) -> bool:
        return self.size is not None and self.size <= SMALL

    @property
    def channels(self) -> int:
        return 1 if self.grey else 3


def probe(paths: list[str], count: int = PROBED) -> Probe:
    """Read the headers (not the pixels) of ``count`` files spread evenly over ``paths``."""
    step = max(1, len(paths) // count)
    sizes, grey = set(), True
    for path in paths[::step][:count]:
        try:
            with Image.open(path) as image:
                sizes.add(image.size)
                grey = grey and image.mode in GREY_MODES
        except OSError:
            continue  # unreadable files are met, and named, when the folder is decoded
    (w, h), *others = sorted(sizes) or [(0, 1)]
    size = w if w == h and not others else None
    return Probe(size, grey, len(paths[::step][:count]))


def cache_root() -> Path:
    return Path(os.environ.get("VERYDEEP_CACHE") or Path.home() / ".cache" / "verydeep") / "folders"


def cache_prefix(root: Path) -> str:
    """The start of every cache file of this folder (one at a time: a new one replaces the last)."""
    return hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:12]


def cache_key(root: Path, paths: list[str], size: int, channels: int) -> str:
    """Changes when any file is added, removed, rewritten or touched, or the size or channels asked for do."""
    digest = hashlib.sha1(f"{size} {channels}".encode())
    start = len(os.path.join(str(root), ""))  # the paths are listed under root: strip it as a string
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path[start:]}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


class _Decode(Dataset):
    """Item k -> chunk k of the files decoded at size x size (uint8 (n, C, size, size)) and which of them could
    not be read."""

    def __init__(self, paths: list[str], size: int, channels: int, skip_bad: bool):
        self.paths, self.size, self.channels, self.skip_bad = paths, size, channels, skip_bad

    def __len__(self) -> int:
        return (len(self.paths) + CHUNK - 1) // CHUNK

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        paths = self.paths[k * CHUNK : (k + 1) * CHUNK]
        out = torch.zeros(len(paths), self.channels, self.size, self.size, dtype=torch.uint8)
        ok = torch.ones(len(paths), dtype=torch.bool)
        for i, path in enumerate(paths):
            try:
                image = read_sample(path, self.channels)
            except ValueError:
                if not self.skip_bad:
                    raise
                ok[i] = False
                continue
            if image.shape[-2:] != (self.size, self.size):  # a file of another size: brought to the folder's
                image = v2.functional.resize(image, [self.size, self.size], antialias=True)
            out[i] = image
        return out, ok


def decode(
    paths: list[str], size: int, channels: int, skip_bad: bool, workers: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Every file decoded in parallel: uint8 (N, C, size, size) and a mask of the readable ones."""
    from tqdm import tqdm

    loader = DataLoader(_Decode(paths, size, channels, skip_bad), batch_size=None, num_workers=workers)
    images, ok = [], []
    with tqdm(total=len(paths), unit="img", desc="decoding", file=sys.stderr, leave=False) as bar:
        for x, good in worker_errors(loader):
            images.append(x)
            ok.append(good)
            bar.update(len(x))
    return torch.cat(images), torch.cat(ok)


def memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class SmallFolderData(TensorData):
    """An image folder held in memory; ``skipped`` counts its unreadable files (with skip_bad)."""

    def __init__(self, *args, bad: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self._bad_count = bad

    @property
    def skipped(self) -> int:
        return self._bad_count


def load(
    root: Path,
    sampling: Sampling,
    files: Files,
    log=lambda line: print(line, file=sys.stderr),
) -> SmallFolderData | None:
    """The folder in memory, or None when it is not one of small images (or would not fit): stream it then."""
    classes = folder_classes(root / "train")
    listed = list_folder(root, classes)  # walked once: the splits below are cut from this listing
    skip_bad, workers = files.skip_bad, files.workers
    everything, _, _ = folder_splits(root, classes, Sampling(split_seed=sampling.split_seed), skip_bad, listed)
    found = probe([path for path, _ in everything["train"]])
    if not found.small:  # larger or mixed sizes: the ImageNet pipeline, streaming from disk
        return None
    size, channels = files.image_size or found.size, found.channels
    paths = sorted({path for samples in everything.values() for path, _ in samples})
    need = len(paths) * channels * size * size
    if need > MEMORY_SHARE * memory_bytes():
        log(f"{root}: {len(paths):,} images of {channels}x{size}x{size} need {need / 2**30:.1f} GiB, more than "
            f"{MEMORY_SHARE:.0%} of this machine's memory: streaming them from disk instead")  # fmt: skip
        return None
    key = cache_key(root, paths, size, channels)
    cached = cache_root() / f"{cache_prefix(root)}-{key}.safetensors"
    if cached.exists():
        tensors = load_file(cached)
        images, ok = tensors["images"], tensors["ok"].bool()
        if images.shape[0] != len(paths) or not skip_bad and not ok.all():
            images = None  # a cache written with --skip-bad: decode again, so the bad files are named
    else:
        images = None
    if images is None:
        log(f"{root}: decoding {len(paths):,} images of {channels}x{size}x{size} into memory "
            f"({need / 2**20:.0f} MiB), cached in {cached.parent}")  # fmt: skip
        images, ok = decode(paths, size, channels, skip_bad, default_workers() if workers is None else workers)
        cached.parent.mkdir(parents=True, exist_ok=True)
        for old in cached.parent.glob(f"{cache_prefix(root)}-*.safetensors"):
            old.unlink()  # the folder's earlier contents
        partial = cached.with_suffix(".partial")
        save_file({"images": images, "ok": ok.to(torch.uint8)}, str(partial),
                  metadata={"root": str(root.resolve()), "files": json.dumps(len(paths))})  # fmt: skip
        partial.replace(cached)
    where = {path: i for i, path in enumerate(paths)}
    chosen, _, notes = folder_splits(root, classes, sampling, skip_bad, listed)
    splits = {}
    for split, samples in chosen.items():
        index = torch.tensor([where[p] for p, _ in samples if ok[where[p]]], dtype=torch.int64)
        labels = torch.tensor([label for p, label in samples if ok[where[p]]], dtype=torch.int64)
        splits[split] = TensorImages(images[index], labels, index)
    notes = [*notes, f"{root.resolve().name} is held in memory: {size} px, {channels} channel(s)"]
    return SmallFolderData(root.resolve().name, classes, splits, sampling.mean, source=str(root), notes=notes,
                           bad=int((~ok).sum()))  # fmt: skip
