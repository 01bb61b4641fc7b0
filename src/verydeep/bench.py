"""`verydeep bench`: training throughput of our engine against the plain PyTorch way, in the same process.

Ours: the training loop's own step (``train.forward_backward`` + SGD) fed by the in-memory batched pipeline,
channels_last, and the precision ``auto`` picks (bf16 autocast where the hardware runs it natively).
Baseline: torchvision's model where one exists (else ours), float32, contiguous, and a torchvision DataLoader
whose dataset makes a PIL image of each sample and applies per-image transforms for the same augmentation.

The two alternate round by round and the medians are reported, so drift in the machine's speed hits both.
Achieved GFLOP/s come from ``torch.utils.flop_counter`` on one real training step; the peak is a large
matrix product in the engine's precision, measured in the same run.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms as T
from torchvision.transforms.v2.functional import to_pil_image

from .data import load_data
from .data.augment import PADDING
from .data.base import Data
from .device import autocast, pick_device, resolve_precision, set_threads
from .recipes import Recipe, get_recipe
from .registry import create_model, get_entry, options_for_data
from .train import forward_backward


@dataclass
class BenchResult:
    model: str
    data: str
    batch_size: int
    image_size: int
    device: str
    precision: str
    images_per_second: float
    gflops_per_second: float
    peak_gflops_per_second: float
    fraction_of_peak: float
    data_fraction: float  # share of our step spent producing the batch (index, augment, normalise)
    train_gflops_per_image: float
    baseline_images_per_second: float | None = None
    speedup: float | None = None
    baseline_model: str | None = None
    baseline_workers: int | None = None
    rounds: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class PILDataset(Dataset):
    """The usual way: a PIL image per sample, torchvision transforms per image (as torchvision's
    FashionMNIST/CIFAR10 datasets do in ``__getitem__``)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: Callable):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(to_pil_image(self.images[i])), int(self.labels[i])


def matmul_peak(device: torch.device, precision: str, size: int = 4096, seconds: float = 1.0) -> float:
    """GFLOP/s of a large square matrix product in the engine's precision: the practical ceiling."""
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    sync(device)
    runs, t0 = 0, time.perf_counter()
    while runs < 2 or time.perf_counter() - t0 < seconds:
        a @ b
        runs += 1
    sync(device)
    return 2 * size**3 * runs / (time.perf_counter() - t0) / 1e9


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def training_flops(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> int:
    """FLOPs of one forward + backward pass on this batch, counted by the flop counter."""
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def cycle(make: Callable[[int], Iterator]) -> Iterator:
    epoch = 0
    while True:
        yield from make(epoch)
        epoch += 1


def timed_steps(step: Callable[[], None], device: torch.device, warmup: int, seconds: float, min_steps: int) -> float:
    """Seconds per step, after ``warmup`` steps, over at least ``min_steps`` steps and ``seconds`` seconds."""
    for _ in range(warmup):
        step()
    sync(device)
    steps, t0 = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - t0 < seconds:
        step()
        steps += 1
    sync(device)
    return (time.perf_counter() - t0) / steps


def bench(
    model: str,
    data: str = "synthetic",
    image_size: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    precision: str = "auto",
    baseline: bool = False,
    rounds: int = 3,
    seconds: float = 6.0,
    warmup: int = 3,
    baseline_workers: int = 0,
    log: Callable[[str], None] = lambda line: None,
) -> BenchResult:
    dev = pick_device(device)
    if dev.type == "cpu":
        set_threads()
    precision = resolve_precision(precision, dev)
    entry = get_entry(model)
    name, recipe = entry.name, get_recipe(entry.recipe)
    dataset = bench_data(data, image_size or (entry.input_size if data == "synthetic" else None), recipe)
    size = dataset.image_size
    if batch_size is None:
        # The recipe's batch; on a CPU, 224 px batches of 256 take minutes a step, so they are cut to 32.
        batch_size = recipe.batch_size if dev.type == "cuda" or size < 128 else 32
    if dataset.sizes["train"] < batch_size:
        raise ValueError(
            f"{data} has {dataset.sizes['train']:,} training images, fewer than one batch of {batch_size}: give "
            "--batch-size N with N at most that, or more images"
        )
    options = options_for_data(name, dataset.num_classes, dataset.in_channels, size)
    our_step, our_data_only, flops_per_image = training_step(name, options, dataset, batch_size, dev, precision,
                                                             recipe)  # fmt: skip

    base_step, base_name = None, None
    if baseline:
        base_step, base_name = baseline_step(name, options, dataset, batch_size, baseline_workers, dev, recipe)

    peak = matmul_peak(dev, precision)
    ours_times, data_times, base_times = timed_rounds(our_step, our_data_only, base_step, dev, batch_size, rounds,
                                                      warmup, seconds, log)  # fmt: skip

    ips = batch_size / statistics.median(ours_times)
    result = BenchResult(
        model=name,
        data=dataset.name,
        batch_size=batch_size,
        image_size=size,
        device=str(dev),
        precision=precision,
        images_per_second=ips,
        gflops_per_second=ips * flops_per_image / 1e9,
        peak_gflops_per_second=peak,
        fraction_of_peak=ips * flops_per_image / 1e9 / peak,
        data_fraction=statistics.median(data_times) / statistics.median(ours_times),
        train_gflops_per_image=flops_per_image / 1e9,
        rounds=rounds,
    )
    if base_step is not None:
        result.baseline_images_per_second = batch_size / statistics.median(base_times)
        result.speedup = ips / result.baseline_images_per_second
        result.baseline_model, result.baseline_workers = base_name, baseline_workers
    return result


def timed_rounds(our_step, our_data_only, base_step, dev, batch_size, rounds, warmup, seconds, log):
    """Seconds per step in each round: ours, our data loading alone, the baseline's (if any), interleaved so
    that a machine's drift touches them alike."""
    ours_times, data_times, base_times = [], [], []
    for r in range(rounds):
        ours_times.append(timed_steps(our_step, dev, warmup, seconds, 3))
        data_times.append(timed_steps(our_data_only, dev, 1, seconds / 10, 3))
        line = f"round {r + 1}/{rounds}: ours {batch_size / ours_times[-1]:.1f} img/s"
        if base_step is not None:
            base_times.append(timed_steps(base_step, dev, warmup, seconds, 3))
            line += f", baseline {batch_size / base_times[-1]:.1f} img/s"
        log(line)
    return ours_times, data_times, base_times


def bench_data(data: str, image_size: int | None, recipe: Recipe) -> Data:
    dataset = load_data(data, image_size=image_size, mean=recipe.mean)
    if not dataset.in_memory:
        raise ValueError(
            f"bench times the in-memory data sets (fashion-mnist, cifar10, cifar100, synthetic, folders of small "
            f"images), not {data}: a large-image folder's speed is its decoding DataLoader's; see the img/s that "
            "verydeep train prints"
        )
    return dataset


def training_step(name: str, options: dict, dataset: Data, batch_size: int, dev: torch.device, precision: str,
                  recipe: Recipe):  # fmt: skip
    """Our training step (channels_last, the precision asked for), the same batches' loading alone, and the
    floating-point operations the step does per image."""
    torch.manual_seed(0)
    ours = create_model(name, **options).to(dev, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(ours.parameters(), lr=0.01, momentum=0.9, weight_decay=recipe.weight_decay)
    batches = cycle(lambda e: dataset.batches("train", batch_size, epoch=e, device=dev, channels_last=True))

    def step():
        x, y = next(batches)
        forward_backward(ours, x, y, dev, precision)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def data_only():
        next(batches)

    x0, y0 = next(batches)
    with autocast(dev, precision):
        flops_per_image = training_flops(ours, x0, y0) / len(y0)
    return step, data_only, flops_per_image


def baseline_step(name: str, options: dict, dataset, batch_size: int, workers: int, dev: torch.device, recipe):
    """One SGD step of the usual way (torchvision's network where it has ours, float32, a PIL DataLoader), and
    what it is."""
    base_model, base_name = baseline_model(name, options, dev)
    base_opt = torch.optim.SGD(base_model.parameters(), lr=0.01, momentum=0.9, weight_decay=recipe.weight_decay)
    base_batches = cycle(lambda e: iter(baseline_loader(dataset, batch_size, workers, e, dev.type == "cuda")))

    def step():
        x, y = next(base_batches)
        x, y = x.to(dev), y.to(dev)
        loss = F.cross_entropy(base_model(x), y)
        base_opt.zero_grad()
        loss.backward()
        base_opt.step()

    return step, base_name


def baseline_model(name: str, options: dict, device: torch.device) -> tuple[nn.Module, str]:
    """torchvision's network where it has this one (float32, contiguous), else ours, built the same way."""
    tv_name = get_entry(name).torchvision
    fits = options["in_channels"] == 3 and options.get("head", "imagenet") == "imagenet"
    if fits and tv_name is not None:
        torch.manual_seed(0)
        return getattr(torchvision.models, tv_name)(num_classes=options["num_classes"]).to(
            device
        ), f"torchvision {tv_name}"
    torch.manual_seed(0)
    return create_model(name, **options).to(device), f"verydeep {name}"


def baseline_loader(dataset, batch_size: int, workers: int, epoch: int, pin: bool) -> DataLoader:
    """The same augmentation done the usual way: pad-4 random crop and flip per PIL image, then ToTensor."""
    images = dataset.images("train")
    mean = dataset.mean.mean((1, 2)).tolist()
    transform = T.Compose(
        [
            T.RandomCrop(dataset.image_size, padding=PADDING),
            T.RandomHorizontalFlip(),
            T.ToTensor(),
            T.Normalize(mean, [1.0] * len(mean)),
        ]
    )
    ds = PILDataset(images.images, images.labels, transform)
    generator = torch.Generator().manual_seed(epoch)
    return DataLoader(
        ds, batch_size, shuffle=True, drop_last=True, num_workers=workers, pin_memory=pin, generator=generator
    )


def format_result(r: BenchResult) -> str:
    lines = [
        f"{r.model} on {r.data} ({r.image_size} px), batch {r.batch_size}, {r.device}, {r.precision}, "
        f"median of {r.rounds} rounds",
        f"  ours:      {r.images_per_second:9.1f} img/s  {r.gflops_per_second:8.1f} GFLOP/s "
        f"= {100 * r.fraction_of_peak:.0f}% of the {r.peak_gflops_per_second:.0f} GFLOP/s {r.precision} "
        f"matrix-multiply peak measured now",
        f"  data pipeline: {100 * r.data_fraction:.2f}% of a training step",
    ]
    if r.speedup is not None:
        lines.append(
            f"  baseline:  {r.baseline_images_per_second:9.1f} img/s  ({r.baseline_model}, float32, contiguous, "
            f"DataLoader with per-image PIL transforms, {r.baseline_workers} workers)"
        )
        lines.append(f"  speedup:   {r.speedup:.2f}x")
    return "\n".join(lines)
