"""Predicting image files: the model's own preprocessing, class names, and files that cannot be read."""

import json
import shutil

import pytest
import torch
import torchvision
from torchvision.io import decode_image, write_jpeg, write_png

from verydeep.cli import main
from verydeep.data import load_data
from verydeep.predict import predict
from verydeep.train import TrainConfig, fit
from verydeep.trained import load_trained

pytestmark = [
    pytest.mark.fashion_mnist,
    # torchvision 0.29 deprecates its image codecs in favour of TorchCodec; they are still what we use
    pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning"),
]

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A ResNet-20 trained for a few steps on a Fashion-MNIST subset: a real run folder."""
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(model="resnet20", subset=256, val_size=100, iters=4, overrides={"batch_size": 32})
    fit(cfg, out, progress=False)
    return out


@pytest.fixture(scope="module")
def images(run, tmp_path_factory):
    """Two Fashion-MNIST test images written here: one a grey PNG, one an RGB JPEG at twice the size."""
    folder = tmp_path_factory.mktemp("images")
    test = load_data("fashion-mnist", subset=256, val_size=100).images("test")
    png, jpeg = folder / "first.png", folder / "second.jpg"
    write_png(test.images[0], str(png))
    large = torch.nn.functional.interpolate(test.images[1:2].float(), scale_factor=2, mode="nearest")
    write_jpeg(large[0].expand(3, -1, -1).to(torch.uint8).contiguous(), str(jpeg), quality=100)
    return {"png": png, "jpeg": jpeg, "pixels": test.images[:2], "labels": test.labels[:2]}


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own errors
        return e.code


def test_png_and_jpeg_are_predicted_with_the_runs_preprocessing(run, images):
    trained = load_trained(run)
    png, jpeg = predict(trained.model, trained.preprocessing, [images["png"], images["jpeg"]], topk=3)
    assert png.error is None and jpeg.error is None
    assert [name for _, name, _ in png.top] == [FASHION[i] for i, _, _ in png.top]
    probabilities = [p for _, _, p in png.top]
    assert probabilities == sorted(probabilities, reverse=True) and len(probabilities) == 3
    # the PNG holds the data set's pixels: its scores are the model's on the image as training fed it
    x = images["pixels"].float() / 255 - trained.preprocessing.mean
    with torch.no_grad():
        expected = trained.model.eval()(x).softmax(1)
    for index, _, p in png.top:
        assert p == pytest.approx(expected[0, index].item(), abs=1e-5)
    # the RGB JPEG at 56 px is made grey and scaled back to 28 px: nearly the data set's image again
    for index, _, p in jpeg.top:
        assert p == pytest.approx(expected[1, index].item(), abs=0.02)


def test_the_command_prints_names_and_probabilities(run, images, capsys):
    assert run_cli(["predict", str(images["png"]), str(images["jpeg"]), "--run", str(run), "--topk", "2"]) == 0
    out = capsys.readouterr().out
    assert str(images["png"]) in out and str(images["jpeg"]) in out
    assert sum(line.strip().endswith(tuple(FASHION)) and "%" in line for line in out.splitlines()) == 4
    assert run_cli(["predict", str(images["png"]), "--run", str(run), "--json"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["file"] == str(images["png"]) and len(result["predictions"]) == 5
    assert set(result["predictions"][0]) == {"class", "index", "probability"}
    assert result["predictions"][0]["class"] in FASHION


def test_unreadable_files_are_named_and_the_others_still_predicted(run, images, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(images["jpeg"].read_bytes()[:200])
    missing = tmp_path / "missing.png"
    argv = ["predict", str(notes), str(images["png"]), str(truncated), str(missing), "--run", str(run), "--json"]
    assert run_cli(argv) == 1
    captured = capsys.readouterr()
    for bad in (notes, truncated, missing):
        assert "verydeep predict: error: " in captured.err and str(bad) in captured.err
    assert "cannot read" in captured.err and "does not exist" in captured.err
    results = json.loads(captured.out)
    assert [r["file"] for r in results] == [str(notes), str(images["png"]), str(truncated), str(missing)]
    assert [("error" in r) for r in results] == [True, False, True, True]


def test_image_size_feeds_the_network_at_that_side(run, images, tmp_path, capsys):
    """--image-size 56: a 56 px image is seen whole at 56 px (the net pools globally), not shrunk to 28 first."""
    large = torch.nn.functional.interpolate(images["pixels"][:1].float(), scale_factor=2, mode="nearest")
    png = tmp_path / "large.png"
    write_png(large[0].to(torch.uint8), str(png))
    trained = load_trained(run)
    x = large / 255 - trained.preprocessing.mean.mean((-2, -1), keepdim=True)  # the mean colour at another size
    with torch.no_grad():
        expected = trained.model.eval()(x).softmax(1)[0]
    assert run_cli(["predict", str(png), "--run", str(run), "--json", "--image-size", "56"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    for p in result["predictions"]:
        assert p["probability"] == pytest.approx(expected[p["index"]].item(), abs=1e-5)
    assert run_cli(["predict", str(png), "--run", str(run), "--json"]) == 0  # default: shrunk to the run's 28 px
    (shrunk,) = json.loads(capsys.readouterr().out)
    assert max(abs(p["probability"] - expected[p["index"]].item()) for p in shrunk["predictions"]) > 1e-4
    assert run_cli(["predict", str(png), "--run", str(run), "--image-size", "0"]) == 2
    err = capsys.readouterr().err
    assert "--image-size must be a positive number of pixels" in err and len(err.strip().splitlines()) == 1


def test_weights_find_their_run_folder_and_are_refused_without_one(run, images, tmp_path, capsys):
    assert run_cli(["predict", str(images["png"]), "--weights", str(run / "model.safetensors"), "--json"]) == 0
    beside = json.loads(capsys.readouterr().out)
    assert beside[0]["predictions"][0]["class"] in FASHION
    shutil.copy(run / "model.safetensors", tmp_path / "model.safetensors")
    assert run_cli(["predict", str(images["png"]), "--weights", str(tmp_path / "model.safetensors")]) == 2
    assert "pass --run DIR" in capsys.readouterr().err


def test_torchvision_weights_get_imagenets_preprocessing_and_class_names(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18(weights=None).eval()
    torch.save(reference.state_dict(), tmp_path / "resnet18.pth")
    generator = torch.Generator().manual_seed(0)
    photo = torch.randint(0, 256, (3, 300, 400), generator=generator, dtype=torch.uint8)
    write_png(photo, str(tmp_path / "photo.png"))
    trained = load_trained(weights=tmp_path / "resnet18.pth", model="resnet18")
    (prediction,) = predict(trained.model, trained.preprocessing, [tmp_path / "photo.png"], topk=5)
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    with torch.no_grad():
        expected = reference(weights.transforms()(decode_image(str(tmp_path / "photo.png")))[None]).softmax(1)[0]
    for index, name, p in prediction.top:
        assert name == weights.meta["categories"][index]
        assert p == pytest.approx(expected[index].item(), abs=1e-4)
