"""Where and how fast to compute: the precision chosen for each CPU, and the synchronised BatchNorm."""

import os
import socket
import subprocess
import sys

import pytest
import torch

from verydeep import device

# The flags lines of /proc/cpuinfo on the CPUs verydeep is run on (abridged to the flags that matter)
CASCADE_LAKE = "fpu sse sse2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni"
ZEN_4 = "fpu sse sse2 avx avx2 fma avx512f avx512dq avx512cd avx512bw avx512vl avx512_bf16 avx512_vnni"
SAPPHIRE_RAPIDS = "fpu sse sse2 avx avx2 avx512f avx512_bf16 avx512_fp16 amx_bf16 amx_tile amx_int8"
ARROW_LAKE = "fpu sse sse2 avx avx2 fma avx_vnni avx_ne_convert"  # bf16 conversions without AVX-512
CPU = torch.device("cpu")


def cpuinfo(flags: str) -> str:
    return f"processor\t: 0\nvendor_id\t: x\nflags\t\t: {flags}\nbugs\t\t: spectre_v1\n\nprocessor\t: 1\nflags\t: fpu\n"


def test_the_flags_are_read_from_the_first_cpu_in_cpuinfo():
    flags = device.parse_cpu_flags(cpuinfo(ZEN_4))
    assert (
        "avx512_bf16" in flags and "avx512f" in flags and "spectre_v1" not in flags and len(flags) == len(ZEN_4.split())
    )
    assert device.parse_cpu_flags("processor : 0\n") == frozenset()


@pytest.mark.parametrize(
    ("flags", "native"),
    [(CASCADE_LAKE, False), (ZEN_4, True), (SAPPHIRE_RAPIDS, True), (ARROW_LAKE, True), ("", False)],
)
def test_auto_precision_is_bf16_only_on_cpus_with_bf16_instructions(monkeypatch, flags, native):
    monkeypatch.setattr(device, "cpu_flags", lambda: device.parse_cpu_flags(cpuinfo(flags)))
    assert device.cpu_has_native_bf16() is native
    assert device.resolve_precision("auto", CPU) == ("bf16" if native else "fp32")
    # what is asked for by name is kept, whatever the CPU
    assert device.resolve_precision("fp32", CPU) == "fp32" and device.resolve_precision("bf16", CPU) == "bf16"


@pytest.mark.parametrize("supported", [True, False])
def test_auto_precision_on_cuda_follows_the_gpu(monkeypatch, supported):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: supported)
    monkeypatch.setattr(device, "cpu_flags", lambda: device.parse_cpu_flags(cpuinfo(ZEN_4)))  # not the host's
    assert device.resolve_precision("auto", torch.device("cuda", 0)) == ("bf16" if supported else "fp32")


def test_an_unknown_precision_names_the_valid_ones():
    with pytest.raises(ValueError, match="unknown precision 'fp16'; valid: auto, bf16, fp32"):
        device.resolve_precision("fp16", CPU)


def test_autocast_runs_bf16_only_when_asked():
    layer = torch.nn.Linear(4, 4)
    with device.autocast(CPU, "bf16"):
        assert layer(torch.randn(2, 4)).dtype == torch.bfloat16
    with device.autocast(CPU, "fp32"):
        assert layer(torch.randn(2, 4)).dtype == torch.float32


@pytest.mark.bf16
def test_a_bf16_step_computes_in_bf16_and_keeps_float32_weights_and_gradients():
    """Autocast, not a model cast: the convolutions run in bf16, the weights and their gradients stay float32, and
    the loss and gradients agree with float32's to bf16's precision (8 bits of mantissa)."""
    from verydeep import create_model
    from verydeep.train import forward_backward

    torch.manual_seed(0)
    net = create_model("resnet20", num_classes=10, in_channels=3).train()
    x, y = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    results = {}
    for precision in ("fp32", "bf16"):
        net.zero_grad()
        loss, logits = forward_backward(net, x, y, CPU, precision)
        results[precision] = loss, logits, torch.cat([p.grad.flatten() for p in net.parameters()])
    assert results["bf16"][1].dtype == torch.bfloat16 and results["fp32"][1].dtype == torch.float32
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in net.parameters())
    assert results["bf16"][0].item() == pytest.approx(results["fp32"][0].item(), rel=0.02)
    cosine = torch.nn.functional.cosine_similarity(results["bf16"][2], results["fp32"][2], dim=0)
    assert cosine > 0.99


@pytest.mark.bf16
def test_a_bf16_run_records_its_precision_and_saves_float32_weights(tmp_path):
    import json

    from safetensors.torch import load_file

    from verydeep.train import TrainConfig, fit

    cfg = TrainConfig(model="resnet20", data="synthetic", subset=64, val_size=32, iters=2, log_every=1,
                      overrides={"batch_size": 32}, precision="bf16")  # fmt: skip
    summary = fit(cfg, tmp_path, progress=False)
    assert summary.precision == "bf16"
    assert json.loads((tmp_path / "config.json").read_text())["run"]["precision"] == "bf16"
    weights = load_file(tmp_path / "model.safetensors").values()
    assert {t.dtype for t in weights if t.is_floating_point()} == {torch.float32}


SYNC_BN_WORKER = """
import sys, torch, torch.distributed as dist
from verydeep.device import CPUSyncBatchNorm
rank, port, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
dist.init_process_group("gloo", rank=rank, world_size=2, init_method=f"tcp://127.0.0.1:{port}")
x, weights, bn_state = torch.load(sys.argv[4])
bn = CPUSyncBatchNorm(3)
bn.load_state_dict(bn_state)
mine = slice(4 * rank, 4 * rank + 4)
x = x[mine].clone().requires_grad_()
y = bn(x)
(y * weights[mine]).sum().backward()
for p in bn.parameters():
    dist.all_reduce(p.grad)  # what DistributedDataParallel does with the parameters' gradients
torch.save({"y": y.detach(), "x_grad": x.grad, "weight_grad": bn.weight.grad, "bias_grad": bn.bias.grad,
            "running_mean": bn.running_mean, "running_var": bn.running_var}, out)
dist.destroy_process_group()
"""


def test_synchronised_batchnorm_on_two_processes_is_batchnorm_on_the_global_batch(tmp_path):
    """Outputs, input gradients, parameter gradients and running statistics of two processes with 4 images each
    equal BatchNorm2d's on the 8 together. The loss weighs the two halves differently, so a backward pass that
    did not sum the statistics' gradients over the processes would be off by the order of the gradients."""
    torch.manual_seed(0)
    x = torch.randn(8, 3, 5, 5) * 2 + 1
    weights = torch.randn(8, 3, 5, 5) + torch.tensor([3.0] * 4 + [-1.0] * 4)[:, None, None, None]
    reference = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        reference.weight.copy_(torch.rand(3) + 0.5)
        reference.bias.copy_(torch.randn(3))
    torch.save((x, weights, reference.state_dict()), tmp_path / "inputs.pt")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                SYNC_BN_WORKER,
                str(rank),
                port,
                str(tmp_path / f"{rank}.pt"),
                str(tmp_path / "inputs.pt"),
            ],
            env={**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
        for rank in (0, 1)
    ]
    assert [w.wait(timeout=120) for w in workers] == [0, 0]
    ranks = [torch.load(tmp_path / f"{rank}.pt") for rank in (0, 1)]
    x = x.clone().requires_grad_()
    y = reference(x)
    (y * weights).sum().backward()
    close = {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(torch.cat([r["y"] for r in ranks]), y.detach(), **close)
    torch.testing.assert_close(torch.cat([r["x_grad"] for r in ranks]), x.grad, **close)
    for r in ranks:
        torch.testing.assert_close(r["weight_grad"], reference.weight.grad, **close)
        torch.testing.assert_close(r["bias_grad"], reference.bias.grad, **close)
        torch.testing.assert_close(r["running_mean"], reference.running_mean, **close)
        torch.testing.assert_close(r["running_var"], reference.running_var, **close)


@pytest.mark.parametrize("cores", [1, 2, 4])
def test_a_run_takes_one_process_unless_asked_for_more(monkeypatch, cores):
    # one process per core measured faster on one Xeon only, slower or level on an AMX Xeon, a Zen 3 and a Zen 5
    from verydeep.launch import procs_for
    from verydeep.train import TrainConfig

    monkeypatch.setattr(device, "physical_cores", lambda: cores)
    monkeypatch.delenv("VERYDEEP_PROCS", raising=False)
    cfg = TrainConfig(model="resnet20", data="synthetic", device="cpu", overrides={"batch_size": 128})
    assert procs_for(None, cfg, "unused", resume=False) == 1
    assert procs_for(3, cfg, "unused", resume=False) == 3  # --procs is obeyed


def test_the_cpu_is_read_from_the_first_processor(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    first = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\n"
    info.write_text(first + "\nprocessor\t: 1\nvendor_id\t: X\nmodel name\t: Other\n")
    real = device.Path
    monkeypatch.setattr(device, "Path", lambda p: info if p == "/proc/cpuinfo" else real(p))
    assert device.cpu_fields()["vendor_id"] == "AuthenticAMD" and device.cpu_name() == "AMD EPYC"
