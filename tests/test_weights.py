"""Weights: our safetensors files, and torchvision's checkpoints giving torchvision's outputs."""

import pickle

import pytest
import torch
import torchvision

import verydeep
from verydeep.runs import load_checkpoint
from verydeep.weights import identify_torchvision, read_metadata, save_weights

TORCHVISION = [
    # torchvision name, our name, options, input side
    ("vgg16", "vgg16", {}, 224),
    ("vgg16_bn", "vgg16", {}, 224),
    ("vgg16_bn", "vgg16_bn", {}, 224),  # torchvision's names, _bn included
    ("vgg11_bn", "vgg11_bn", {}, 224),
    ("vgg19_bn", None, {}, 224),  # no name: the checkpoint's keys say which network it is
    ("vgg19", "vgg19", {}, 224),
    ("resnet18", "resnet18", {}, 224),
    ("resnet34", "resnet34", {}, 224),
    ("resnet50", "resnet50", {"stride_at": "3x3"}, 224),
]


def randomise_bn_statistics(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.1, 0.1)


@pytest.mark.parametrize("tv_name,ours,options,size", TORCHVISION)
def test_outputs_equal_torchvisions_with_the_same_weights(tmp_path, tv_name, ours, options, size):
    torch.manual_seed(0)
    reference = getattr(torchvision.models, tv_name)(weights=None)
    randomise_bn_statistics(reference)
    path = tmp_path / f"{tv_name}.pth"
    torch.save(reference.state_dict(), path)
    model = verydeep.create_model(ours, weights=path, **options)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        diff = (model.eval()(x) - reference.eval()(x)).abs().max().item()
    assert diff < 1e-4


def test_torchvision_resnet50_defaults_to_its_own_stride_placement(tmp_path):
    path = tmp_path / "r50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    assert verydeep.create_model("resnet50", weights=path).stride_at == "3x3"
    assert identify_torchvision(torch.load(path, weights_only=True)) == "resnet50"


def test_a_torchvision_file_for_another_architecture_names_both(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match="resnet18.*resnet34"):
        verydeep.create_model("resnet34", weights=path)
    vgg = tmp_path / "vgg11.pth"
    torch.save(torchvision.models.vgg11(weights=None).state_dict(), vgg)
    with pytest.raises(ValueError, match="vgg11.*vgg_d"):
        verydeep.create_model("vgg16", weights=vgg)


def test_safetensors_round_trip_rebuilds_the_same_network(tmp_path):
    torch.manual_seed(0)
    model = verydeep.create_model("resnet20", num_classes=10, in_channels=1, shortcut="B")
    path = save_weights(model, tmp_path / "r20.safetensors")
    assert read_metadata(path)["verydeep.model"] == "resnet20"
    loaded = verydeep.create_model("resnet20", weights=path)
    assert loaded.shortcut == "B" and loaded.conv1.in_channels == 1 and loaded.fc.out_features == 10
    again = verydeep.load_model(path)
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(x), model.eval()(x))
        torch.testing.assert_close(again.eval()(x), model(x))


def test_safetensors_for_another_architecture_names_both(tmp_path):
    path = save_weights(verydeep.create_model("resnet20"), tmp_path / "r20.safetensors")
    with pytest.raises(ValueError, match="resnet20.*resnet56"):
        verydeep.create_model("resnet56", weights=path)


class Exploit:
    def __reduce__(self):
        import os

        return (os.system, ("touch EXPLOITED",))


def test_loading_never_executes_pickled_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"conv1.weight": Exploit()}, f, protocol=2)
    for load in (lambda: verydeep.create_model("resnet18", weights=path), lambda: load_checkpoint(path)):
        with pytest.raises(ValueError, match=r"evil.pth is refused as unsafe to load: .*\(posix.system\)"):
            load()
    assert not (tmp_path / "EXPLOITED").exists()


def test_torchvisions_bn_names_build_table_1s_nets_with_batch_norm():
    for tv_name in ("vgg11_bn", "vgg13_bn", "vgg16_bn", "vgg19_bn"):
        ours, theirs = verydeep.create_model(tv_name), getattr(torchvision.models, tv_name)(weights=None)
        assert ours.verydeep_options == {"batch_norm": True}
        assert {k: v.shape for k, v in ours.state_dict().items()} == {
            k: v.shape for k, v in theirs.state_dict().items()
        }
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in verydeep.create_model("vgg16").modules())
    with pytest.raises(ValueError, match="needs a model name or a weights file"):
        verydeep.create_model()


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere"):
        verydeep.create_model("resnet18", weights=tmp_path / "nothere.pth")
