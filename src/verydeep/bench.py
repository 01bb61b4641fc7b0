"""`verydeep bench`: training throughput of our engine against the plain PyTorch way, in the same process.

Ours: the training loop's own step (``train.forward_backward`` + SGD) fed by the in-memory batched pipeline,
channels_last, and the precision ``auto`` picks (bf16 autocast where the hardware runs it natively).
Baseline: torchvision's model where one exists (else ours), float32, contiguous, and a torchvision DataLoader
whose dataset makes a PIL image of each sample and applies per-image transforms for the same augmentation.

On a CPU ours runs as the processes ``verydeep train`` would start (``--procs N``: one thread each,
DistributedDataParallel over gloo, each with its share of the batch; ``procs`` chooses), and their img/s is the
whole machine's; the baseline is one process using every core's threads, as a plain script is.
The two alternate round by round and the medians are reported, so drift in the machine's speed hits both.
Achieved GFLOP/s come from ``torch.utils.flop_counter`` on one real training step; the peak is a large
matrix product in the engine's precision, measured in the same run.
"""

from __future__ import annotations

import contextlib
import copy
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from multiprocessing.connection import wait
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.autograd.profiler import record_function
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode
from torchvision import transforms as T
from torchvision.transforms.v2.functional import to_pil_image

from .config import TrainConfig
from .data.augment import PADDING
from .device import Distributed, autocast, physical_cores, pick_device, set_threads
from .launch import child_environment, free_port, procs_for
from .processes import TICK, Family
from .registry import create_model, get_entry
from .setup import Setup, load_shared, resolve
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
    procs: int = 1  # our processes (their img/s summed: each trains on its share of every batch)
    threads_per_proc: int = 1
    profile: dict[str, float] | None = None  # share of our step per category (`--profile`)

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


def matmul_peak(device: torch.device, precision: str, largest: int = 4096, seconds: float = 1.0) -> float:
    """GFLOP/s of a large square matrix product in the engine's precision: the practical ceiling.

    The side grows from 256, doubling up to ``largest`` while one product takes under a quarter of
    ``seconds``: a CPU that emulates bf16 does a 4096-square product in minutes, not milliseconds.
    """
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    size = 256
    while True:
        a = torch.randn(size, size, device=device, dtype=dtype)
        b = torch.randn(size, size, device=device, dtype=dtype)
        a @ b  # warm-up
        sync(device)
        t0 = time.perf_counter()
        a @ b
        sync(device)
        if size >= largest or time.perf_counter() - t0 > seconds / 4:
            break
        size *= 2
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


def timed_steps(step: Callable[[], None], device: torch.device, warmup: int, seconds: float, min_steps: int,
                agree: Callable[[bool], bool] = lambda done: done) -> float:  # fmt: skip
    """Seconds per step, after ``warmup`` steps, over at least ``min_steps`` steps and ``seconds`` seconds.
    ``agree`` makes processes that step together stop together (rank 0's clock decides)."""
    for _ in range(warmup):
        step()
    sync(device)
    steps, t0 = 0, time.perf_counter()
    while not agree(steps >= min_steps and time.perf_counter() - t0 >= seconds):
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
    procs: int | None = None,
    profile: bool = False,
    log: Callable[[str], None] = lambda line: None,
) -> BenchResult:
    dev = pick_device(device)
    if dev.type == "cpu":
        set_threads()
    setup = bench_setup(model, data, image_size, batch_size, dev, precision)
    batch_size, procs = setup.plan.rank_batch, bench_procs(procs, setup)
    flops_per_image = step_flops(setup)

    base_step, base_name = None, None
    if baseline:
        base_step, base_name = baseline_step(setup.name, setup.options, setup.data, batch_size, baseline_workers,
                                             dev, setup.recipe)  # fmt: skip

    peak = matmul_peak(dev, setup.compute.precision)
    with ours_in(setup, procs) as ours:
        ours_times, data_times, base_times = timed_rounds(ours, base_step, dev, batch_size, rounds, warmup, seconds,
                                                          log)  # fmt: skip
        shares = ours.profile(PROFILE_STEPS) if profile else None

    ips = batch_size / statistics.median(ours_times)
    result = BenchResult(
        model=setup.name,
        data=setup.data.name,
        batch_size=batch_size,
        image_size=setup.data.image_size,
        device=str(dev),
        precision=setup.compute.precision,
        images_per_second=ips,
        gflops_per_second=ips * flops_per_image / 1e9,
        peak_gflops_per_second=peak,
        fraction_of_peak=ips * flops_per_image / 1e9 / peak,
        data_fraction=statistics.median(data_times) / statistics.median(ours_times),
        train_gflops_per_image=flops_per_image / 1e9,
        rounds=rounds,
        procs=procs,
        threads_per_proc=max(1, physical_cores() // procs) if dev.type == "cpu" else torch.get_num_threads(),
        profile=shares,
    )
    if base_step is not None:
        result.baseline_images_per_second = batch_size / statistics.median(base_times)
        result.speedup = ips / result.baseline_images_per_second
        result.baseline_model, result.baseline_workers = base_name, baseline_workers
    return result


def bench_procs(procs: int | None, setup: Setup) -> int:
    """Our processes: as many as ``verydeep train`` would start for this run (``launch.procs_for``), each with an
    equal share of the batch."""
    procs = procs_for(procs, setup.config, "", resume=False)
    if setup.plan.rank_batch % procs:
        raise ValueError(f"a batch of {setup.plan.rank_batch} does not split evenly among {procs} processes: give "
                         f"--procs a divisor of it, or --batch-size a multiple of {procs}")  # fmt: skip
    return procs


def bench_setup(model: str, data: str, image_size: int | None, batch_size: int | None, dev: torch.device,
                precision: str) -> Setup:  # fmt: skip
    """The run ``verydeep train`` would set up for this model and data, with the batch that bench times (``batch_size``
    if given, else the recipe's; on a CPU, 224 px batches of 256 take minutes a step, so they are cut to 32)."""
    cfg = TrainConfig(model=model, data=data, image_size=image_size, device=str(dev), precision=precision)
    if data == "synthetic" and image_size is None:
        cfg = replace(cfg, image_size=get_entry(model).input_size)
    if batch_size is None:
        batch_size = cfg.resolved_recipe().batch_size
        if dev.type == "cpu" and (cfg.image_size or 0) >= 128:
            batch_size = 32
    cfg = replace(cfg, overrides={"batch_size": batch_size})
    group = Distributed()
    dataset = load_shared(cfg, cfg.resolved_recipe(), group)
    if not dataset.in_memory:
        raise ValueError(
            f"bench times the in-memory data sets (fashion-mnist, cifar10, cifar100, synthetic, folders of small "
            f"images), not {data}: a large-image folder's speed is its decoding DataLoader's; see the img/s that "
            "verydeep train prints"
        )
    setup = resolve(cfg, group, dev, data=dataset)
    return setup


def timed_rounds(ours, base_step, dev, batch_size, rounds, warmup, seconds, log):
    """Seconds per step in each round: ours, our data loading alone, the baseline's (if any), interleaved so
    that a machine's drift touches them alike."""
    ours_times, data_times, base_times = [], [], []
    for r in range(rounds):
        step_seconds, data_seconds = ours.round(warmup, seconds)
        ours_times.append(step_seconds)
        data_times.append(data_seconds)
        line = f"round {r + 1}/{rounds}: ours {batch_size / ours_times[-1]:.1f} img/s"
        if base_step is not None:
            base_times.append(timed_steps(base_step, dev, warmup, seconds, 3))
            line += f", baseline {batch_size / base_times[-1]:.1f} img/s"
        log(line)
    return ours_times, data_times, base_times


def step_flops(setup: Setup) -> float:
    """Floating-point operations of one training step per image, counted on one batch (of a copy of the model)."""
    dev = setup.compute.device
    net = copy.deepcopy(setup.model).to(dev, memory_format=torch.channels_last)
    x, y = next(setup.data.batches("train", setup.plan.rank_batch, device=dev, channels_last=True))
    with autocast(dev, setup.compute.precision):
        return training_flops(net, x, y) / len(y)


class OurStep:
    """Our training step (channels_last, the precision asked for, the SGD update) as one process runs it,
    under DistributedDataParallel when it is one of several."""

    def __init__(self, setup: Setup, rank: int = 0, world_size: int = 1):
        self.dev, self.rank, self.world_size = setup.compute.device, rank, world_size
        model = setup.model.to(self.dev, memory_format=torch.channels_last)
        self.net = nn.parallel.DistributedDataParallel(model) if world_size > 1 else model
        recipe = setup.recipe
        self.optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=recipe.weight_decay)
        self.precision = setup.compute.precision
        shard = dict(rank=rank, world_size=world_size, device=self.dev, channels_last=True)
        # the plan's batch is each process's share (``resolve`` split it over the group)
        self.batches = cycle(lambda e: setup.data.batches("train", setup.plan.rank_batch, epoch=e, **shard))

    def step(self) -> None:
        with record_function(DATA_MARK):
            x, y = next(self.batches)
        forward_backward(self.net, x, y, self.dev, self.precision)
        with record_function(OPTIMIZER_MARK):
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)

    def data_only(self) -> None:
        next(self.batches)

    def agree(self, done: bool) -> bool:
        """Rank 0's ``done`` for every process (each steps as long as the others: they meet in every step)."""
        if self.world_size == 1:
            return done
        flag = torch.tensor([float(done)])
        dist.broadcast(flag, 0)
        return bool(flag.item())

    def round(self, warmup: int, seconds: float) -> tuple[float, float]:
        """Seconds per training step, and per batch of the data pipeline alone."""
        step_seconds = timed_steps(self.step, self.dev, warmup, seconds, 3, self.agree)
        return step_seconds, timed_steps(self.data_only, self.dev, 1, seconds / 10, 3)

    def profile(self, steps: int) -> dict[str, float] | None:
        """The share of a step in each of ``PROFILE_CATEGORIES`` over ``steps`` steps (rank 0's; None elsewhere)."""
        self.step()
        profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU])
        with contextlib.ExitStack() as stack:
            if self.rank == 0:
                stack.enter_context(quiet_stderr())
                stack.enter_context(profiler)
            sync(self.dev)
            t0 = time.perf_counter()
            for _ in range(steps):
                self.step()
            sync(self.dev)
            wall = time.perf_counter() - t0
        return step_shares(profiler.events(), wall) if self.rank == 0 else None


@contextlib.contextmanager
def quiet_stderr():
    """The profiler's C++ library writes its start and stop (and a failed GPU probe) to stderr: not to ours."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def ours_in(setup: Setup, procs: int):
    """Our step in this process, or in ``procs`` spawned one-thread processes (each sets up its own)."""
    if procs == 1:
        yield OurStep(setup)
        return
    with Family() as family:
        workers = OurProcesses(setup.config, procs, family)
        try:
            yield workers
        finally:
            workers.close()


class OurProcesses:
    """``procs`` processes that step together, as ``verydeep train --procs N`` runs; rank 0 answers. They are a
    ``processes.Family``: they stop if this process dies, and one that dies is named at once, not waited on."""

    def __init__(self, cfg: TrainConfig, procs: int, family: Family):
        port = free_port()
        self.family = family
        self.pipes = []
        for rank in range(procs):
            here, there = self.family.context.Pipe()
            self.family.function(f"bench process {rank} of {procs}", serve, (rank, procs, port, cfg, there))
            there.close()
            self.pipes.append(here)
        self.ask("ready")

    def ask(self, what: str, *args):
        for pipe in self.pipes:
            pipe.send((what, *args))
        answers: dict[int, object] = {}
        sentinels = {child.sentinel: child for child in self.family.children}
        while len(answers) < len(self.pipes):
            waiting = [pipe for rank, pipe in enumerate(self.pipes) if rank not in answers]
            ready = wait(waiting + list(sentinels), timeout=TICK)
            for rank, pipe in enumerate(self.pipes):
                if pipe in ready and rank not in answers:
                    with contextlib.suppress(EOFError):
                        answers[rank] = pipe.recv()
            dead = [child for sentinel, child in sentinels.items() if sentinel in ready]
            if dead:  # a process that died leaves the others waiting in a collective: stop at once
                child = dead[0]
                child.wait(TICK)
                raise RuntimeError(child.ending().describe() if child.poll() is not None else f"{child.name} died")
        for answer in answers.values():
            if isinstance(answer, Exception):
                raise answer
        return answers[0]

    def round(self, warmup: int, seconds: float) -> tuple[float, float]:
        return self.ask("round", warmup, seconds)

    def profile(self, steps: int) -> dict[str, float]:
        return self.ask("profile", steps)

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for child in self.family.children:
            child.wait(30)  # what has not ended by then, the family kills


def serve(rank: int, procs: int, port: int, cfg: TrainConfig, pipe) -> None:
    """One of ``OurProcesses``: join the group, set up the run as the parent did, then answer its requests."""
    os.environ.update(child_environment(rank, procs, port))
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    dev = torch.device("cpu")
    group = Distributed.from_env()
    group.init(dev)
    try:
        ours = OurStep(resolve(cfg, group, dev), rank, procs)
        while (request := pipe.recv()) is not None:
            what, *args = request
            try:
                pipe.send(True if what == "ready" else getattr(ours, what)(*args))
            except Exception as e:  # told to the parent, which raises it
                pipe.send(RuntimeError(f"bench process {rank}: {e}"))
    finally:
        dist.destroy_process_group()


# Where a step's time goes (`bench --profile`), by the profiler's operator names.
PROFILE_CATEGORIES = ("convolution", "normalisation", "element-wise", "optimizer", "data", "communication", "other")
PROFILE_STEPS = 10
DATA_MARK, OPTIMIZER_MARK = "verydeep::data", "verydeep::optimizer"


def categorise(name: str) -> str | None:
    """The category of one profiled operator by its name; None for what is not an operator (autograd's
    bookkeeping, Python), which counts as "other"."""
    if name in (DATA_MARK, OPTIMIZER_MARK):
        return "data" if name == DATA_MARK else "optimizer"
    if any(word in name for word in ("c10d", "gloo", "allreduce", "all_reduce", "broadcast")):
        return "communication"
    if not name.startswith("aten::"):
        return None
    if "conv" in name or name in ("aten::linear", "aten::addmm", "aten::mm", "aten::bmm", "aten::matmul"):
        return "convolution"
    if "batch_norm" in name:
        return "normalisation"
    return "element-wise"  # ReLU and its backward, additions, casts, padding, pooling, the loss


def step_shares(events, wall: float) -> dict[str, float]:
    """Each category's share of ``wall`` seconds: the self time of the profiled thread's operators, an operator
    inside the data or optimizer mark counted there; "other" is the rest of the wall time."""
    marks = [e for e in events if e.name in (DATA_MARK, OPTIMIZER_MARK)]
    thread = marks[0].thread if marks else None
    seconds = dict.fromkeys(PROFILE_CATEGORIES, 0.0)
    for e in events:
        if thread is not None and e.thread != thread:
            continue
        category, parent = categorise(e.name), e.cpu_parent
        while parent is not None:
            if parent.name in (DATA_MARK, OPTIMIZER_MARK):
                category = categorise(parent.name)
                break
            parent = parent.cpu_parent
        if category is not None:
            seconds[category] += e.self_cpu_time_total / 1e6
    seconds["other"] = max(0.0, wall - sum(seconds.values()))
    total = sum(seconds.values())
    return {k: v / total for k, v in seconds.items()}


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
    how = (
        f"{r.procs} processes x {r.threads_per_proc} thread{'s' if r.threads_per_proc > 1 else ''}, "
        f"{r.batch_size // r.procs} images each"
        if r.procs > 1
        else f"1 process, {r.threads_per_proc} thread{'s' if r.threads_per_proc > 1 else ''}"
    )
    lines = [
        f"{r.model} on {r.data} ({r.image_size} px), batch {r.batch_size}, {r.device}, {r.precision}, "
        f"median of {r.rounds} rounds",
        f"  ours:      {r.images_per_second:9.1f} img/s  {r.gflops_per_second:8.1f} GFLOP/s "
        f"= {100 * r.fraction_of_peak:.0f}% of the {r.peak_gflops_per_second:.3g} GFLOP/s {r.precision} "
        f"matrix-multiply peak measured now ({how})",
        f"  data pipeline: {100 * r.data_fraction:.2f}% of a training step",
    ]
    if r.speedup is not None:
        lines.append(
            f"  baseline:  {r.baseline_images_per_second:9.1f} img/s  ({r.baseline_model}, float32, contiguous, "
            f"DataLoader with per-image PIL transforms, {r.baseline_workers} workers, 1 process)"
        )
        lines.append(f"  speedup:   {r.speedup:.2f}x")
    if r.profile is not None:
        lines.append(format_profile(r.profile, f"rank 0 of {r.procs}" if r.procs > 1 else "one process"))
    return "\n".join(lines)


def format_profile(shares: dict[str, float], whose: str) -> str:
    """The table of ``bench --profile``: each category's share of a step, with a bar."""
    lines = [f"  where a step's time goes ({PROFILE_STEPS} steps profiled, {whose}):"]
    for category, share in shares.items():
        lines.append(f"    {category:<14} {100 * share:5.1f}%  {'#' * round(40 * share)}")
    return "\n".join(lines)


def profile_chart(r: BenchResult, path: Path) -> Path:
    """``bench --profile``'s bar chart: the share of a step per category."""
    from matplotlib.figure import Figure

    categories = list(r.profile)
    fig = Figure(figsize=(6.4, 3.2))
    ax = fig.subplots()
    ax.barh(categories[::-1], [100 * r.profile[c] for c in categories[::-1]], color="tab:blue")
    ax.set_xlabel("share of a training step (%)")
    ax.set_title(f"{r.model}, {r.data} {r.image_size} px, batch {r.batch_size}, {r.precision}, "
                 f"{r.procs} process{'es' if r.procs > 1 else ''}", fontsize=9)  # fmt: skip
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path
