"""`verydeep bench` measures both ways and reports consistent figures (speed itself is never asserted here)."""

import json

import pytest
import torch

from verydeep.bench import PILDataset, baseline_loader, bench, training_flops
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
