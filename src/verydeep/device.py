"""Where and how fast to compute: device, precision, threads, and the process group under torchrun."""

from __future__ import annotations

import contextlib
import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

# How long a process waits in a collective for the others before it fails with an error instead of hanging.
# torchrun already stops every process when one exits with an error; this bounds the cases it cannot see (a
# process stuck outside a collective, a lost machine). The longest legitimate wait is local rank 0 fetching a
# data set while the others wait (CIFAR-10 is 170 MB), or rank 0 writing a VGG checkpoint (over 1 GB).
COLLECTIVE_TIMEOUT = timedelta(minutes=15)


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError("--device cuda was asked for but no CUDA device is available; use --device cpu")
        return torch.device("cuda", local_rank) if name == "cuda" else torch.device(name)
    if name != "cpu":
        raise ValueError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N")
    return torch.device("cpu")


@cache
def cpu_flags() -> frozenset[str]:
    """This machine's CPU feature flags (empty where /proc/cpuinfo cannot be read)."""
    try:
        return parse_cpu_flags(Path("/proc/cpuinfo").read_text())
    except OSError:
        return frozenset()


def parse_cpu_flags(cpuinfo: str) -> frozenset[str]:
    """The feature flags of the first CPU listed in the text of /proc/cpuinfo."""
    line = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
    return frozenset(line.partition(":")[2].split())


def cpu_has_native_bf16() -> bool:
    """bfloat16 is only faster than float32 on CPUs with bf16 instructions (AVX512-BF16, AMX)."""
    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16", "avx_ne_convert"})


def resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"unknown precision {precision!r}; valid: auto, bf16, fp32")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    # On CPUs without bf16 instructions autocast emulates it and runs several times slower than float32.
    return "bf16" if cpu_has_native_bf16() else "fp32"


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def physical_cores() -> int:
    """Cores this process may use, counting each physical core once (SMT siblings share its units)."""
    allowed = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else range(os.cpu_count() or 1)
    cores = set()
    for cpu in allowed:
        siblings = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/thread_siblings_list")
        try:
            cores.add(siblings.read_text().strip())
        except OSError:
            cores.add(str(cpu))
    return max(1, len(cores))


def cpu_fields() -> dict[str, str]:
    """The first processor's fields in /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    lines = text.split("\n\n")[0].splitlines()
    return {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in lines if ":" in line)}


# The processes one run trains in on a CPU by default: one, with a thread per core. Two one-thread processes
# measured 15-20% faster on one 2-core Intel Xeon, but not on a Xeon with AMX (one process ahead in 3 of 4
# alternating pairs), nor on an AMD Zen 3 (level) or a Zen 5 (one process ahead in 11 of 12 pairs): the gain is
# not the CPU family's, so ``--procs N`` asks for it where ``bench --procs`` shows it (README).
CPU_PROCS = 1


def cpu_name() -> str:
    """The CPU as the kernel reports it, with its family and model (a virtual machine may name only the
    vendor: 'AMD EPYC, family 25 model 17' is a Zen 4), else the architecture."""
    import platform

    fields = cpu_fields()
    if not fields:
        return platform.processor() or platform.machine()
    name = fields.get("model name") or platform.machine()
    if "cpu family" in fields and "model" in fields:
        name += f", family {fields['cpu family']} model {fields['model']}"
    return name


def set_threads(world_size: int = 1) -> int:
    """One compute thread per physical core, shared out among the processes on this machine.

    An explicit OMP_NUM_THREADS wins: whoever set it knows what else runs on the machine.
    """
    if os.environ.get("OMP_NUM_THREADS"):
        return torch.get_num_threads()
    local = int(os.environ.get("LOCAL_WORLD_SIZE", world_size))
    threads = max(1, physical_cores() // max(1, local))
    torch.set_num_threads(threads)
    return threads


@contextlib.contextmanager
def process_settings(deterministic: bool):
    """While a run trains: deterministic algorithms if asked for; afterwards the caller's own threads,
    determinism, cuDNN autotuning and cuBLAS workspace setting, whatever the run changed."""
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    saved = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    try:
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS refuses determinism without it
            torch.use_deterministic_algorithms(True)
            torch.backends.cudnn.benchmark = False
        yield
    finally:
        torch.set_num_threads(saved[0])
        torch.use_deterministic_algorithms(saved[1])
        torch.backends.cudnn.benchmark = saved[2]
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
        else:
            os.environ["CUBLAS_WORKSPACE_CONFIG"] = cublas


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 when run directly)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls) -> Distributed:
        return cls(
            int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0))
        )

    def describe(self) -> str:
        return f"rank {self.rank} of {self.world_size} (local rank {self.local_rank} on {socket.gethostname()})"

    def init(self, device: torch.device) -> bool:
        """Join the torchrun job's process group; True if this call created it (and should close it)."""
        if not self.enabled or dist.is_initialized():
            return False
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=COLLECTIVE_TIMEOUT)
        return True

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.enabled:
            dist.all_reduce(tensor)
        return tensor

    def broadcast_object(self, obj):
        if not self.enabled:
            return obj
        holder = [obj]
        dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


class AllReduceSum(torch.autograd.Function):
    """Sum over the processes whose backward sums the gradients likewise: each process's output feeds every
    process's loss. (torch.distributed.nn.functional.all_reduce does this but is deprecated.)"""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class CPUSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d that normalises training batches by the statistics of the global batch, summed over all
    processes: what nn.SyncBatchNorm does, for CPU processes (gloo), whose tensors it refuses.

    Each process all-reduces per-channel sums of x and x^2 and its count, in float64 so that the variance
    E[x^2] - E[x]^2 keeps its digits. The all-reduce is differentiable (its backward sums the gradients
    over the processes), so the gradient is the one of the global batch as well.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        channels = x.shape[1]
        x32 = x.float()
        count = torch.full((1,), x.numel() / channels, dtype=torch.float64)
        sums = torch.cat([x32.sum((0, 2, 3), dtype=torch.float64), x32.square().sum((0, 2, 3), dtype=torch.float64)])
        sums = AllReduceSum.apply(torch.cat([sums, count]))
        n = sums[-1]
        mean = sums[:channels] / n
        var = sums[channels:-1] / n - mean.square()
        with torch.no_grad():
            self.num_batches_tracked += 1
            factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
            self.running_mean.lerp_(mean.float(), factor)
            self.running_var.lerp_((var * n / (n - 1)).float(), factor)  # unbiased, as BatchNorm2d keeps it
        scale = self.weight * (var.float() + self.eps).rsqrt()
        shift = self.bias - mean.float() * scale
        return (x32 * scale[:, None, None] + shift[:, None, None]).to(x.dtype)


def convert_sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm2d of ``model`` made to use the statistics of the global batch across processes."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            if not (child.affine and child.track_running_stats):
                raise ValueError(f"{name}: synchronised BatchNorm on CPU needs affine=True, track_running_stats=True")
            synced = CPUSyncBatchNorm(child.num_features, child.eps, child.momentum).to(child.weight.device)
            synced.load_state_dict(child.state_dict())
            setattr(model, name, synced)
        else:
            convert_sync_batchnorm(child, device)
    return model
