"""`verydeep bench` measures both ways and reports consistent figures (speed itself is never asserted here)."""

import json
import time
from types import SimpleNamespace

import pytest
import torch

from verydeep.bench import (
    PROFILE_CATEGORIES,
    BenchResult,
    PILDataset,
    baseline_loader,
    bench,
    categorise,
    format_result,
    step_shares,
    training_flops,
)
from verydeep.cli import main
from verydeep.data import load_data
from verydeep.registry import create_model
from verydeep.summary import count_macs


def test_bench_reports_both_ways_and_the_ratios_between_them():
    r = bench("resnet20", data="synthetic", image_size=32, batch_size=16, baseline=True, rounds=1, seconds=0.2)
    assert r.images_per_second > 0 and r.baseline_images_per_second > 0
    assert r.speedup == pytest.approx(r.images_per_second / r.baseline_images_per_second)
    assert r.gflops_per_second == pytest.approx(r.images_per_second * r.train_gflops_per_image)
    assert r.fraction_of_peak == pytest.approx(r.gflops_per_second / r.peak_gflops_per_second)
    assert 0 < r.data_fraction < 1
    assert r.baseline_model == "verydeep resnet20"  # torchvision has no CIFAR ResNet


def test_training_flops_are_three_forward_passes():
    # backward costs twice the forward for convolutions and linear layers (input and weight gradients)
    model = create_model("resnet20", num_classes=10)
    x, y = torch.randn(2, 3, 32, 32), torch.tensor([1, 2])
    forward = 2 * count_macs(model, 32) * 2  # multiply-adds of one 32 px image, as FLOPs, for 2 images
    assert training_flops(model, x, y) == pytest.approx(3 * forward, rel=0.02)


def test_the_baseline_augments_each_pil_image_as_our_pipeline_does():
    data = load_data("synthetic", image_size=32)
    loader = baseline_loader(data, batch_size=8, workers=0, epoch=0, pin=False)
    x, y = next(iter(loader))
    assert isinstance(loader.dataset, PILDataset)
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.shape == (8,)


def test_bench_json_is_one_line_with_the_documented_keys(capsys):
    argv = ["bench", "--model", "resnet20", "--image-size", "32", "--batch-size", "8", "--rounds", "1"]
    assert main([*argv, "--seconds", "0.1", "--baseline", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    keys = {"images_per_second", "baseline_images_per_second", "speedup", "gflops_per_second", "fraction_of_peak"}
    assert keys <= set(json.loads(out[0]))


def test_bench_refuses_an_image_folder_and_says_what_it_times(tmp_path):
    from PIL import Image

    for split in ("train", "val"):
        for label in ("a", "b"):
            (tmp_path / split / label).mkdir(parents=True)
            Image.new("RGB", (80, 96)).save(tmp_path / split / label / "0.png")  # large: streamed, not held
    with pytest.raises(ValueError, match="in-memory data sets"):
        bench("resnet18", data=str(tmp_path))
    small = tmp_path / "small"
    for split in ("train", "val"):
        for label in ("a", "b"):
            (small / split / label).mkdir(parents=True)
            Image.new("L", (20, 20)).save(small / split / label / "0.png")
    with pytest.raises(ValueError, match="2 training images, fewer than one batch of 128"):
        bench("resnet20", data=str(small))  # held in memory, but too few images for a step


def test_two_processes_share_the_batch_and_report_what_they_timed():
    r = bench("resnet20", data="synthetic", image_size=16, batch_size=16, rounds=1, seconds=0.2, procs=2)
    assert (r.procs, r.threads_per_proc, r.batch_size) == (2, 1, 16) and r.images_per_second > 0
    assert "2 processes x 1 thread, 8 images each" in format_result(r)
    with pytest.raises(ValueError, match="a batch of 15 does not split evenly among 2 processes"):
        bench("resnet20", data="synthetic", image_size=16, batch_size=15, procs=2)
    with pytest.raises(ValueError, match="--procs must be at least 1, not 0"):
        bench("resnet20", data="synthetic", image_size=16, batch_size=16, procs=0)


@pytest.mark.parametrize(
    ("name", "category"),
    [
        ("aten::convolution_backward", "convolution"),
        ("aten::mkldnn_convolution", "convolution"),
        ("aten::addmm", "convolution"),
        ("aten::native_batch_norm_backward", "normalisation"),
        ("aten::threshold_backward", "element-wise"),
        ("aten::add_", "element-wise"),
        ("verydeep::data", "data"),
        ("verydeep::optimizer", "optimizer"),
        ("c10d::allreduce_", "communication"),
        ("autograd::engine::evaluate_function: ReluBackward0", None),
    ],
)
def test_each_profiled_operator_falls_in_its_category(name, category):
    assert categorise(name) == category


def event(name: str, self_us: float, parent=None, thread: int = 1):
    return SimpleNamespace(name=name, self_cpu_time_total=self_us, cpu_parent=parent, thread=thread)


def test_a_steps_shares_count_operators_inside_the_data_and_optimizer_marks_there_and_the_rest_as_other():
    data, optimizer = event("verydeep::data", 1000), event("verydeep::optimizer", 200)
    backward = event("autograd::engine::evaluate_function: ConvolutionBackward0", 100)
    events = [
        data,
        event("aten::copy_", 500, parent=data),  # a copy in the data pipeline is data, not element-wise
        backward,
        event("aten::convolution_backward", 3000, parent=backward),
        event("aten::native_batch_norm", 1000),
        event("aten::relu_", 500),
        optimizer,
        event("aten::add_", 300, parent=optimizer),  # the optimizer's additions are the optimizer's
        event("aten::convolution", 9999, thread=2),  # another thread's: not the step's wall time
    ]
    shares = step_shares(events, wall=0.010)
    assert tuple(shares) == PROFILE_CATEGORIES and sum(shares.values()) == pytest.approx(1.0)
    expected = {"convolution": 0.30, "normalisation": 0.10, "element-wise": 0.05, "optimizer": 0.05, "data": 0.15}
    expected |= {"communication": 0.0, "other": 0.35}  # the wall time no operator accounts for
    assert shares == pytest.approx(expected)


def test_bench_profile_prints_where_a_steps_time_goes_and_draws_it(tmp_path, capsys):
    chart = tmp_path / "profile.png"
    argv = ["bench", "--model", "resnet20", "--image-size", "16", "--batch-size", "8", "--rounds", "1"]
    assert main([*argv, "--seconds", "0.1", "--procs", "1", "--profile", str(chart)]) == 0
    out = capsys.readouterr().out
    assert "where a step's time goes (10 steps profiled, one process)" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("    ")]
    assert [row[0] for row in rows] == list(PROFILE_CATEGORIES)
    percents = {row[0]: float(row[1].rstrip("%")) for row in rows}
    assert sum(percents.values()) == pytest.approx(100, abs=0.5) and percents["convolution"] > 0
    assert percents["data"] > 0 and percents["optimizer"] > 0
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"chart: {chart}" in out


def test_the_peak_is_measured_on_a_product_that_takes_its_time_and_a_small_peak_still_reads(monkeypatch):
    # A CPU that emulates bf16 does a 4096-square product in minutes: the side stops growing once one
    # product takes a quarter of the time given, and a peak below 1 GFLOP/s is printed, not rounded to 0.
    from verydeep import bench as module

    sides = []
    real = torch.Tensor.__matmul__

    def slow_matmul(a, b):
        sides.append(a.shape[0])
        time.sleep(0.015 * (a.shape[0] // 256) ** 2)  # four times slower each doubling, like a real product
        return real(a, b)

    monkeypatch.setattr(torch.Tensor, "__matmul__", slow_matmul)
    peak = module.matmul_peak(torch.device("cpu"), "fp32", seconds=0.2)
    assert max(sides) == 512 and peak > 0  # 256: 15 ms, well under 50 ms; 512: 60 ms, over it
    monkeypatch.undo()
    r = BenchResult(model="resnet20", data="synthetic", batch_size=16, image_size=16, device="cpu", precision="bf16",
                    images_per_second=1.5, gflops_per_second=0.108, peak_gflops_per_second=0.27, fraction_of_peak=0.4,
                    data_fraction=0.01, train_gflops_per_image=0.072, rounds=1)  # fmt: skip
    assert "= 40% of the 0.27 GFLOP/s bf16 matrix-multiply peak" in format_result(r)
