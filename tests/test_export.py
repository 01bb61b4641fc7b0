"""Exported networks compute what the PyTorch network computes, at any batch size."""

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from verydeep import create_model, load_model
from verydeep.cli import main
from verydeep.export import input_shape
from verydeep.runs import RunDir
from verydeep.trained import load_trained
from verydeep.weights import read_metadata, save_weights


def trained(name: str = "resnet20", **options) -> torch.nn.Module:
    """A network with random BatchNorm statistics, so that an export left in training mode would show."""
    torch.manual_seed(0)
    model = create_model(name, **options)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


def write_record(run: RunDir, image_size: int, in_channels: int) -> None:
    """config.json of a short run of version 0.1.0, made to describe a network of this input."""
    record = RunDir(Path(__file__).parent / "data" / "run-0.1.0").read_record()
    data = dataclasses.replace(record.data, image_size=image_size, in_channels=in_channels, classes=list("abcdefghij"))
    run.create()
    run.write_record(dataclasses.replace(record, data=data, mean=[[[0.0]]] * in_channels))


def fake_run(folder: Path, model: torch.nn.Module, image_size: int, in_channels: int) -> RunDir:
    run = RunDir(folder)
    write_record(run, image_size, in_channels)
    save_weights(model, run.weights)
    return run


def export_cli(*argv: str) -> int:
    try:
        return main(["export", *argv])
    except SystemExit as e:  # argparse's own errors
        return e.code


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory) -> tuple[torch.nn.Module, Path]:
    root = tmp_path_factory.mktemp("onnx")
    model = trained(num_classes=10, in_channels=1)
    run = fake_run(root / "run", model, image_size=28, in_channels=1)
    out = root / "m.onnx"
    assert export_cli("--model", "resnet20", "--run", str(run.path), "--format", "onnx", "--out", str(out)) == 0
    return model, out


def test_onnx_runs_in_onnxruntime_at_any_batch_size_as_pytorch_does(onnx_file):
    ort = pytest.importorskip("onnxruntime")
    model, path = onnx_file
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (images,), (logits,) = session.get_inputs(), session.get_outputs()
    assert (images.name, logits.name) == ("images", "logits")
    assert isinstance(images.shape[0], str) and images.shape[1:] == [1, 28, 28]  # the batch axis is free
    for batch in (1, 3):
        x = torch.randn(batch, 1, 28, 28)
        with torch.no_grad():
            expected = model(x)
        (got,) = session.run(None, {"images": x.numpy()})
        assert got.shape == (batch, 10)
        assert abs(got - expected.numpy()).max() < 1e-4


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated")
def test_torchscript_loads_and_matches_at_any_batch_size(tmp_path):
    model = trained("vgg_a", num_classes=10, head="small", image_size=32, batch_norm=True)
    save_weights(model, tmp_path / "vgg.safetensors")
    out = tmp_path / "vgg.pt"
    assert export_cli("--weights", str(tmp_path / "vgg.safetensors"), "--format", "torchscript", "--out", str(out)) == 0
    scripted = torch.jit.load(str(out))
    for batch in (1, 3):
        x = torch.randn(batch, 3, 32, 32)
        with torch.no_grad():
            torch.testing.assert_close(scripted(x), model(x), rtol=1e-5, atol=1e-5)


def test_safetensors_carry_the_network_and_the_input_shape_comes_from_the_run(tmp_path):
    model = trained("resnet32", num_classes=10, in_channels=1)
    run = fake_run(tmp_path / "run", model, image_size=28, in_channels=1)
    out = tmp_path / "out" / "resnet32.safetensors"
    assert export_cli("--run", str(run.path), "--format", "safetensors", "--out", str(out)) == 0
    assert read_metadata(out)["verydeep.model"] == "resnet32"
    rebuilt = load_model(out)
    assert all(torch.equal(v, rebuilt.state_dict()[k]) for k, v in model.state_dict().items())
    assert load_file(out).keys() == model.state_dict().keys()
    assert input_shape(load_trained(run=run.path)) == (1, 28, 28)
    assert input_shape(load_trained(weights=out)) == (1, 32, 32)  # the paper's CIFAR size when no run says otherwise
    assert input_shape(load_trained(weights=out), image_size=40) == (1, 40, 40)


def test_bad_export_requests_say_what_to_do(tmp_path, capsys):
    run = RunDir(tmp_path / "run")
    write_record(run, image_size=28, in_channels=1)
    assert export_cli("--run", str(run.path), "--format", "onnx", "--out", str(tmp_path / "m.onnx")) == 2
    assert "no model.safetensors" in capsys.readouterr().err
    fake_run(tmp_path / "other", trained(), image_size=32, in_channels=3)
    argv = ["--model", "resnet56", "--run", str(tmp_path / "other"), "--format", "onnx", "--out", str(tmp_path / "x")]
    assert export_cli(*argv) == 2
    assert "not for the requested model resnet56" in capsys.readouterr().err
    assert export_cli("--run", str(run.path), "--format", "tflite", "--out", str(tmp_path / "m")) == 2
    assert "invalid choice: 'tflite'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="give a run folder .* or a weights file"):
        load_trained(model="resnet20")
