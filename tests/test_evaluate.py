"""The papers' test protocols: VGG's dense and multi-crop evaluation, ResNet's 10-crop and multi-scale testing."""

import json

import pytest
import torch
from torchvision.io import write_png
from torchvision.transforms import v2

from verydeep import create_model
from verydeep.cli import main
from verydeep.data import load_data, synthetic
from verydeep.data.memory import TensorData, TensorImages
from verydeep.evaluate import PROTOCOLS, average_scores, evaluate_protocol, make_views, network_for
from verydeep.metrics import evaluate
from verydeep.train import TrainConfig, fit
from verydeep.trained import Preprocessing, load_eval_data, load_trained
from verydeep.weights import save_weights


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A ResNet-20 trained for a few steps on a Fashion-MNIST subset: a real run folder."""
    out = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(model="resnet20", subset=256, val_size=100, iters=4, overrides={"batch_size": 32})
    fit(cfg, out, progress=False)
    return out


@pytest.fixture(scope="module")
def few(run):
    """Four val images of Fashion-MNIST, with the run's network and preprocessing: enough to run any protocol."""
    trained = load_trained(run)
    return trained, load_data("fashion-mnist", subset=256, val_size=4)


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own errors
        return e.code


# The protocols on a trained model


@pytest.mark.fashion_mnist
def test_center_is_the_training_loops_evaluation(run):
    trained = load_trained(run)
    data = load_eval_data(trained)
    ours = evaluate_protocol(trained.model, data, "val", "center", trained.preprocessing)
    loop = evaluate(trained.model, data.batches("val", 64), torch.device("cpu"))
    assert ours.images == loop.images == 100
    assert ours.error == loop.error and ours.top5_error == loop.top5_error
    assert ours.loss == pytest.approx(loop.loss, rel=1e-5)


@pytest.mark.fashion_mnist
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_each_protocol_runs_on_a_tiny_trained_model(few, protocol):
    trained, data = few
    result = evaluate_protocol(trained.model, data, "val", protocol, trained.preprocessing)
    views = {"center": 1, "tencrop": 10, "multicrop": 150, "dense": 6, "multiscale": 10}[protocol]
    assert result.views_per_image == views and result.images == 4
    assert 0 <= result.top5_error <= result.error <= 1 and result.loss > 0
    # the papers' scales for 224 crops, in proportion for 28 px images
    scales = {"dense": [32, 48, 64], "multicrop": [32, 48, 64], "multiscale": [28, 32, 48, 60, 80]}
    assert result.scales == scales.get(protocol)


@pytest.mark.fashion_mnist
def test_tencrop_of_a_constant_image_equals_the_centre_view(run):
    trained = load_trained(run)
    model, prep = trained.model.eval(), trained.preprocessing
    # an image folder's reading: ten crops of the image rescaled to shorter side 32 for 28 px crops
    photo = torch.full((1, 1, 40, 50), 117, dtype=torch.uint8)
    tencrop = make_views("tencrop", 28, resize=32)(photo)
    center = make_views("center", 28, resize=32)(photo)
    assert tencrop[0].shape == (1, 10, 1, 28, 28)
    scores = average_scores(model, tencrop, prep, 1000)
    assert torch.allclose(scores, average_scores(model, center, prep, 1000), atol=1e-6)
    # 28 px data: crops of the image zero-padded by 4 px, as the training crops (ResNet Sec. 4.2) -- the same
    # views for a black image, not for a grey one
    black, grey = torch.zeros(1, 1, 28, 28, dtype=torch.uint8), torch.full((1, 1, 28, 28), 117, dtype=torch.uint8)
    padded = make_views("tencrop", 28, stored_at_crop=True)
    plain = make_views("center", 28, stored_at_crop=True)
    black_scores = average_scores(model, padded(black), prep, 1000)
    assert torch.allclose(black_scores, average_scores(model, plain(black), prep, 1000), atol=1e-6)
    assert not torch.equal(padded(grey)[0][:, 0], grey)  # the top-left crop starts in the padding


@pytest.mark.fashion_mnist
def test_the_evaluate_command_writes_its_result_to_the_run_folder(run, capsys):
    for protocol in ("center", "tencrop"):
        assert run_cli(["eval", "--run", str(run), "--split", "val", "--protocol", protocol]) == 0
        out = capsys.readouterr().out
        saved = json.loads((run / f"eval_val_{protocol}.json").read_text())
        assert saved["protocol"] == protocol and saved["images"] == 100 and saved["model"] == "resnet20"
        assert f"top-1 error {100 * saved['error']:.2f}%" in out and "eval_val_" in out


def probe(channels: int, crop: int) -> tuple[torch.nn.Module, Preprocessing]:
    """A linear classifier of the whole view: its scores change with every pixel's place, so a crop in the wrong
    place or a flip left out changes the averaged posteriors."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(channels * crop * crop, 10)).eval()
    mean = torch.rand(channels, 1, 1)
    return model, Preprocessing(crop, mean, tuple(str(i) for i in range(10)), crop)


def posteriors(model, prep, views: list[torch.Tensor]) -> torch.Tensor:
    """The mean of the soft-max posteriors of the views, each (B, C, h, w), computed one view at a time."""
    with torch.no_grad():
        return torch.stack([model(prep.normalise(v)).softmax(1) for v in views]).mean(0)


def corners_and_centre(images: torch.Tensor, crop: int) -> list[torch.Tensor]:
    """The four corner crops, the centre crop and the horizontal flips of the five (even margins only)."""
    h, w = images.shape[-2:]
    places = [(0, 0), (0, w - crop), (h - crop, 0), (h - crop, w - crop), ((h - crop) // 2, (w - crop) // 2)]
    crops = [images[..., t : t + crop, l : l + crop] for t, l in places]
    return crops + [c.flip(-1) for c in crops]


def test_tencrop_averages_the_posteriors_of_five_crops_and_their_flips():
    generator = torch.Generator().manual_seed(1)
    # 28 px data: the crops of the image zero-padded by 4 px (the training crops' padding, ResNet Sec. 4.2)
    stored = torch.randint(0, 256, (3, 1, 28, 28), generator=generator, dtype=torch.uint8)
    model, prep = probe(1, 28)
    expected = posteriors(model, prep, corners_and_centre(torch.nn.functional.pad(stored, (4, 4, 4, 4)), 28))
    views = make_views("tencrop", 28, stored_at_crop=True)(stored)
    torch.testing.assert_close(average_scores(model, views, prep, 10**6), expected)
    centre = make_views("center", 28, stored_at_crop=True)(stored)
    torch.testing.assert_close(average_scores(model, centre, prep, 10**6), posteriors(model, prep, [stored]))
    # an image folder's photo, already at its shorter side of 36 for 32 px crops: crops of the photo itself
    photo = torch.randint(0, 256, (2, 3, 36, 44), generator=generator, dtype=torch.uint8)
    model, prep = probe(3, 32)
    views = make_views("tencrop", 32, resize=36)(photo)
    torch.testing.assert_close(average_scores(model, views, prep, 10**6),
                               posteriors(model, prep, corners_and_centre(photo, 32)))  # fmt: skip
    centre = make_views("center", 32, resize=36)(photo)
    torch.testing.assert_close(average_scores(model, centre, prep, 10**6),
                               posteriors(model, prep, [photo[..., 2:34, 6:38]]))  # fmt: skip
    # in forward passes of one view at a time, the same average
    torch.testing.assert_close(average_scores(model, views, prep, 32 * 32), posteriors(model, prep,
                               corners_and_centre(photo, 32)))  # fmt: skip


# VGG: dense evaluation and multi-crop (Sec. 3.2)


@pytest.fixture(scope="module")
def vgg_a():
    """The paper's configuration A with its FC-4096 head, at 224 px (He initialisation keeps its outputs apart)."""
    torch.manual_seed(0)
    return create_model("vgg_a", num_classes=10, init="kaiming").eval()


def test_dense_vgg_a_at_224_equals_the_fc_evaluation_of_the_centre_crop(vgg_a):
    image = synthetic.generate(1, synthetic.patterns(224, seed=0), seed=0)
    mirrored = torch.cat([image.images[..., :112], image.images[..., :112].flip(-1)], -1)  # its own flip
    val = TensorImages(mirrored, image.labels, image.index)
    data = TensorData("synthetic", [str(i) for i in range(10)], {"train": image, "val": val, "test": image}, "rgb", "")
    prep = Preprocessing.from_data(data)
    x = image.images
    with torch.no_grad():
        fc_scores = vgg_a(prep.normalise(x)).softmax(1)
        flip_scores = vgg_a(prep.normalise(x.flip(-1))).softmax(1)
    # on a 224 image the score map is 1x1: the dense form's scores are the FC form's, averaged with the flip's
    dense = network_for(vgg_a, "dense", (224,))
    dense_scores = average_scores(dense, make_views("dense", 224, (224,), stored_at_crop=True)(x), prep, 10**6)
    assert torch.allclose(dense_scores, (fc_scores + flip_scores) / 2, atol=1e-5)
    # so for an image that is its own mirror image, dense evaluation is exactly the centre evaluation
    center = evaluate_protocol(vgg_a, data, "val", "center")
    result = evaluate_protocol(vgg_a, data, "val", "dense", scales=(224,))
    assert result.views_per_image == 2 and result.images == 1
    assert result.loss == pytest.approx(center.loss, rel=1e-5)


def test_dense_evaluation_averages_the_posteriors_of_each_scale_and_its_flip(vgg_a):
    """VGG Sec. 3.2 at two scales Q: the dense net's posteriors for the image rescaled to each Q and for its flip,
    averaged (the dense net's own spatial averaging is tested against the FC form in test_models)."""
    image = synthetic.generate(1, synthetic.patterns(240, seed=1), seed=1).images[..., :232, :]
    prep = Preprocessing(224, torch.tensor([0.4, 0.5, 0.6])[:, None, None], tuple(str(i) for i in range(10)), 256)
    dense = network_for(vgg_a, "dense", (256, 288))
    views = make_views("dense", 224, (256, 288))(image)
    assert [tuple(v.shape[:3]) + (min(v.shape[-2:]),) for v in views] == [(1, 2, 3, 256), (1, 2, 3, 288)]
    assert all(v.shape[-1] > v.shape[-2] for v in views)  # not square: the score map is wider than it is high
    rescaled = [v2.functional.resize(image, [q], antialias=True) for q in (256, 288)]
    expected = posteriors(dense, prep, [x for r in rescaled for x in (r, r.flip(-1))])
    torch.testing.assert_close(average_scores(dense, views, prep, 10**7), expected, rtol=1e-4, atol=1e-6)


def test_multicrop_is_a_5x5_grid_of_crops_and_their_flips():
    image = torch.arange(256 * 320, dtype=torch.int64).remainder(251).to(torch.uint8).view(1, 1, 256, 320)
    (views,) = make_views("multicrop", 224, (256,))(image)
    assert views.shape == (1, 50, 1, 224, 224)
    tops, lefts = (0, 8, 16, 24, 32), (0, 24, 48, 72, 96)  # evenly spaced from corner to corner
    for i, top in enumerate(tops):
        for j, left in enumerate(lefts):
            assert torch.equal(views[0, 5 * i + j], image[0, :, top : top + 224, left : left + 224])
    assert torch.equal(views[0, 25:], views[0, :25].flip(-1))
    (three_scales,) = make_views("multicrop", 224)(image)
    assert three_scales.shape[1] == 150  # Q = 256, 384, 512 (VGG Table 5)


# Protocols that do not fit say so


def test_dense_and_multiscale_refuse_the_small_vgg_head():
    small = create_model("vgg_a", head="small", num_classes=10, in_channels=1, image_size=28)
    for protocol in ("dense", "multiscale"):
        with pytest.raises(ValueError, match="small-image head.*no dense form: use --protocol center"):
            network_for(small, protocol, (28,))
    assert network_for(small, "multicrop", (32,)) is small


def test_crops_larger_than_the_image_and_misplaced_scales_are_refused(vgg_a):
    with pytest.raises(ValueError, match="scale 24 is smaller than the crop: give scales of at least 28"):
        make_views("multicrop", 28, (24, 32))
    with pytest.raises(ValueError, match="needs images of at least 224 px"):
        network_for(vgg_a, "dense", (192, 256))
    with pytest.raises(ValueError, match="scales apply to dense, multicrop, multiscale"):
        make_views("tencrop", 28, (32,))
    with pytest.raises(ValueError, match="unknown protocol 'tenfold'"):
        make_views("tenfold", 28)


@pytest.mark.fashion_mnist
def test_the_command_names_the_protocol_that_does_not_fit(tmp_path, capsys):
    small = create_model("vgg_a", head="small", num_classes=10, in_channels=1, image_size=28)
    save_weights(small, tmp_path / "vgg_a.safetensors")
    argv = ["eval", "--weights", str(tmp_path / "vgg_a.safetensors"), "--data", "fashion-mnist", "--protocol", "dense"]
    assert run_cli(argv) == 2
    assert "verydeep eval: error: dense evaluation runs the paper's VGG head as convolutions" in capsys.readouterr().err
    assert run_cli(["eval", "--protocol", "center"]) == 2
    assert "one of the arguments --run --weights is required" in capsys.readouterr().err


# Image folders: photos at their own size, rescaled as the papers do


@pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")
def test_protocols_on_an_image_folder(tmp_path):
    generator = torch.Generator().manual_seed(0)
    for split, count in (("train", 2), ("val", 1)):
        for label in ("ants", "bees"):
            (tmp_path / split / label).mkdir(parents=True)
            for i in range(count):
                h, w = torch.randint(40, 64, (2,), generator=generator).tolist()
                image = torch.randint(0, 256, (3, h, w), generator=generator, dtype=torch.uint8)
                write_png(image, str(tmp_path / split / label / f"{i}.png"))
    data = load_data(str(tmp_path), image_size=32, scale=(37, 48), workers=0)
    torch.manual_seed(0)
    model = create_model("resnet20", num_classes=2).eval()
    center = evaluate_protocol(model, data, "val", "center", workers=0)
    loop = evaluate(model, data.batches("val", 3), torch.device("cpu"))
    assert center.error == loop.error and center.loss == pytest.approx(loop.loss, rel=1e-5)
    for protocol in PROTOCOLS:
        result = evaluate_protocol(model, data, "val", protocol, workers=0)
        assert result.images == 2 and 0 <= result.error <= 1
