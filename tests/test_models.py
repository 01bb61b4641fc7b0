"""The networks: every model runs and learns, options behave as the papers define them."""

import pytest
import torch
from torch import nn

import verydeep
from verydeep.models import VGG, ZeroPadShortcut
from verydeep.models.resnet import IMAGENET_STAGES, BasicBlock, Bottleneck
from verydeep.summary import count_parameters, meta_model


def small_input(name: str) -> tuple[dict, torch.Tensor, int]:
    """Options, a batch and the expected class count that exercise each model cheaply."""
    if name.startswith("vgg"):
        return {"head": "small", "num_classes": 7, "in_channels": 1}, torch.randn(2, 1, 28, 28), 7
    if name in {f"{kind}{d}" for kind in ("resnet", "plain") for d in IMAGENET_STAGES}:
        return {"num_classes": 5}, torch.randn(2, 3, 64, 64), 5
    if name.endswith("1202"):  # small maps keep 1202 layers quick; float64 keeps plain-1202's tiny gradients
        return {"num_classes": 10, "in_channels": 1}, torch.randn(2, 1, 8, 8, dtype=torch.float64), 10
    return {"num_classes": 10, "in_channels": 1}, torch.randn(2, 1, 28, 28), 10


@pytest.mark.parametrize("name", verydeep.list_models())
def test_every_model_runs_forward_and_backward_and_every_parameter_learns(name):
    torch.manual_seed(0)
    options, x, classes = small_input(name)
    model = verydeep.create_model(name, **options).to(x.dtype)
    out = model(x)
    assert out.shape == (2, classes)
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient reaches {missing[:5]}"


@pytest.mark.parametrize("name", ["vgg_a", "vgg_a_lrn", "vgg_b", "vgg_c", "vgg_d", "vgg_e"])
def test_vgg_paper_head_on_224_gives_1000_scores(name):
    model = verydeep.create_model(name).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 1000)


def test_aliases_build_the_paper_configurations():
    assert verydeep.create_model("vgg16", head="small").config == "D"
    assert verydeep.create_model("vgg11", head="small").config == "A"
    assert verydeep.create_model("vgg13", head="small").config == "B"
    assert verydeep.create_model("vgg19", head="small").config == "E"


def test_the_papers_names_find_their_networks():
    from verydeep.registry import by_paper_name, entries

    vggs = [e for e in entries() if e.family == "vgg"]
    assert sorted(e.paper_name for e in vggs) == ["A", "A-LRN", "B", "B-5x5", "C", "D", "E"]
    for entry in vggs:  # each letter names the network built from that column of Table 1
        assert verydeep.create_model(by_paper_name(entry.paper_name).name, head="small").config == entry.paper_name
    found = {name: by_paper_name(name) for name in ("ResNet-56", "plain-56", "ResNet-20", "plain-34", "ResNet-1202")}
    assert {name: (e.name, e.depth, e.residual) for name, e in found.items()} == {
        "ResNet-56": ("resnet56", 56, True), "plain-56": ("plain56", 56, False), "ResNet-20": ("resnet20", 20, True),
        "plain-34": ("plain34", 34, False), "ResNet-1202": ("resnet1202", 1202, True),
    }  # fmt: skip
    assert found["ResNet-20"].input_size == 32 and found["plain-34"].input_size == 224
    with pytest.raises(ValueError, match="no network is called 'ResNet-21' in the papers; known: .*ResNet-20"):
        by_paper_name("ResNet-21")


def conv_sequence(model: VGG) -> list[str]:
    """The feature layers as Table 1 tokens, e.g. ['conv3-64', 'LRN', 'maxpool', ...]."""
    tokens = []
    for m in model.features:
        if isinstance(m, nn.Conv2d):
            tokens.append(f"conv{m.kernel_size[0]}-{m.out_channels}")
        elif isinstance(m, nn.LocalResponseNorm):
            tokens.append("LRN")
        elif isinstance(m, nn.MaxPool2d):
            tokens.append("maxpool")
    return tokens


def test_a_lrn_has_one_lrn_right_after_the_first_conv_with_alexnets_parameters():
    model = meta_model("vgg_a_lrn")
    layers = list(model.features)
    lrns = [i for i, m in enumerate(layers) if isinstance(m, nn.LocalResponseNorm)]
    assert len(lrns) == 1
    assert isinstance(layers[0], nn.Conv2d) and isinstance(layers[1], nn.ReLU) and lrns[0] == 2
    lrn = layers[2]
    # AlexNet: k=2, n=5, alpha=1e-4, beta=0.75; torch divides alpha by n.
    assert (lrn.size, lrn.k, lrn.beta) == (5, 2.0, 0.75)
    assert lrn.alpha / lrn.size == pytest.approx(1e-4)
    assert conv_sequence(model)[:3] == ["conv3-64", "LRN", "maxpool"]
    assert "LRN" not in conv_sequence(meta_model("vgg_a"))


def test_lrn_matches_alexnets_formula():
    lrn = meta_model("vgg_a_lrn").features[2].to_empty(device="cpu")
    a = torch.rand(1, 8, 3, 3) * 10
    expected = torch.empty_like(a)
    for c in range(8):
        window = a[:, max(0, c - 2) : c + 3].square().sum(1)
        expected[:, c] = a[:, c] / (2 + 1e-4 * window) ** 0.75
    torch.testing.assert_close(lrn(a), expected)


def test_configurations_follow_table_1_layer_by_layer():
    expected = {
        "vgg_a": "conv3-64 M conv3-128 M conv3-256 conv3-256 M conv3-512 conv3-512 M conv3-512 conv3-512 M",
        "vgg_b": "conv3-64 conv3-64 M conv3-128 conv3-128 M conv3-256 conv3-256 M conv3-512 conv3-512 M "
        "conv3-512 conv3-512 M",
        "vgg_c": "conv3-64 conv3-64 M conv3-128 conv3-128 M conv3-256 conv3-256 conv1-256 M "
        "conv3-512 conv3-512 conv1-512 M conv3-512 conv3-512 conv1-512 M",
        "vgg_d": "conv3-64 conv3-64 M conv3-128 conv3-128 M conv3-256 conv3-256 conv3-256 M "
        "conv3-512 conv3-512 conv3-512 M conv3-512 conv3-512 conv3-512 M",
        "vgg_e": "conv3-64 conv3-64 M conv3-128 conv3-128 M conv3-256 conv3-256 conv3-256 conv3-256 M "
        "conv3-512 conv3-512 conv3-512 conv3-512 M conv3-512 conv3-512 conv3-512 conv3-512 M",
    }
    for name, table in expected.items():
        assert " ".join(conv_sequence(meta_model(name))).replace("maxpool", "M") == table, name
    weight_layers = {"vgg_a": 11, "vgg_a_lrn": 11, "vgg_b": 13, "vgg_c": 16, "vgg_d": 16, "vgg_e": 19}
    for name, depth in weight_layers.items():
        model = meta_model(name)
        assert sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()) == depth, name


def test_every_hidden_layer_is_followed_by_relu_and_fc_layers_by_dropout():
    model = meta_model("vgg_d")
    layers = list(model.features)
    for i, m in enumerate(layers):
        if isinstance(m, nn.Conv2d):
            assert isinstance(layers[i + 1], nn.ReLU)
    kinds = [type(m).__name__ for m in model.classifier]
    assert kinds == ["Linear", "ReLU", "Dropout", "Linear", "ReLU", "Dropout", "Linear"]
    assert [m.p for m in model.classifier if isinstance(m, nn.Dropout)] == [0.5, 0.5]
    assert [m.out_features for m in model.classifier if isinstance(m, nn.Linear)] == [4096, 4096, 1000]
    assert sum(isinstance(m, nn.MaxPool2d) and m.kernel_size == 2 and m.stride == 2 for m in layers) == 5


def test_vgg_batch_norm_option_adds_one_bn_per_conv():
    model = meta_model("vgg_e", batch_norm=True)
    convs = sum(isinstance(m, nn.Conv2d) for m in model.features)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.features) == convs == 16


def test_vgg_init_options():
    torch.manual_seed(0)
    normal = verydeep.create_model("vgg_a", head="small", image_size=32)
    weights = normal.features[3].weight
    assert weights.std().item() == pytest.approx(0.01, rel=0.05)
    assert all(m.bias.abs().sum() == 0 for m in normal.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    glorot = verydeep.create_model("vgg_a", head="small", init="glorot").features[3].weight
    fan_in, fan_out = 64 * 9, 128 * 9
    assert glorot.std().item() == pytest.approx((2 / (fan_in + fan_out)) ** 0.5, rel=0.05)


def test_dense_vgg_d_equals_the_fc_form_on_224_and_scores_larger_images():
    torch.manual_seed(0)
    model = verydeep.create_model("vgg_d").eval()
    dense = model.dense().eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(dense(x), model(x), atol=1e-5, rtol=0)
        assert dense.score_map(torch.randn(1, 3, 288, 320)).shape == (1, 1000, 3, 4)
        assert dense(torch.randn(1, 3, 288, 320)).shape == (1, 1000)
    assert dense.classifier[0].weight.data_ptr() == model.classifier[0].weight.data_ptr()  # shared, not copied


def test_dense_evaluation_averages_the_fc_forms_scores_over_every_7x7_window():
    """On images larger than 224 px the dense form's class-score map is averaged over space (Sec. 3.2): each
    position's scores are the FC head applied to that 7x7 window of the conv features."""
    torch.manual_seed(0)
    model = verydeep.create_model("vgg_a", num_classes=10, init="kaiming").eval()
    dense = model.dense().eval()
    for h, w in ((256, 288), (288, 352)):
        x = torch.randn(1, 3, h, w)
        with torch.no_grad():
            features = model.features(x)
            windows = [
                model.classifier(features[..., i : i + 7, j : j + 7].flatten(1))
                for i in range(features.shape[-2] - 6)
                for j in range(features.shape[-1] - 6)
            ]
            assert len(windows) == (h // 32 - 6) * (w // 32 - 6) > 1
            torch.testing.assert_close(dense(x), torch.stack(windows).mean(0), atol=1e-4, rtol=1e-4)


def numbered(model: nn.Module, start: int) -> nn.Module:
    """Every conv and FC layer's weights and bias set to its own constant, from ``start`` on, in order."""
    with torch.no_grad():
        for k, m in enumerate(m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))):
            m.weight.fill_(start + k)
            m.bias.fill_(-(start + k))
    return model


@pytest.mark.parametrize(("config", "targets"), [("vgg_b", (0, 2, 4, 5)), ("vgg_d", (0, 2, 4, 5)),
                                                  ("vgg_e", (0, 2, 4, 5))])  # fmt: skip
def test_init_from_a_copies_as_first_four_convs_into_the_same_places_and_its_three_fc_layers(config, targets):
    """VGG Sec. 3.1: A's conv1_1, conv2_1, conv3_1 and conv3_2 start the deeper net's conv1_1, conv2_1, conv3_1 and
    conv3_2 (its 1st, 3rd, 5th and 6th convs), A's FC layers its FC layers; every other layer keeps its own."""
    from verydeep.models.vgg import initialise_from_a

    options = {"head": "small", "num_classes": 10, "in_channels": 1}
    net_a = numbered(verydeep.create_model("vgg_a", **options), start=1)
    deep = numbered(verydeep.create_model(config, **options), start=100)
    copied = initialise_from_a(deep, net_a)
    a_convs = [m for m in net_a.features if isinstance(m, nn.Conv2d)]
    deep_convs = [m for m in deep.features if isinstance(m, nn.Conv2d)]
    names = {m: n for n, m in deep.named_modules()}
    sources = dict(zip(targets, a_convs[:4]))
    for k, conv in enumerate(deep_convs):
        source = sources.get(k)
        expected = (
            (source.weight, source.bias)
            if source is not None
            else (torch.full_like(conv.weight, 100 + k), torch.full_like(conv.bias, -100 - k))
        )
        assert torch.equal(conv.weight, expected[0]) and torch.equal(conv.bias, expected[1]), names[conv]
    fc_a = [m for m in net_a.classifier if isinstance(m, nn.Linear)]
    fc_deep = [m for m in deep.classifier if isinstance(m, nn.Linear)]
    assert all(torch.equal(t.weight, s.weight) and torch.equal(t.bias, s.bias) for t, s in zip(fc_deep, fc_a))
    assert copied == [names[deep_convs[k]] for k in targets] + [names[m] for m in fc_deep]


def test_init_from_a_refuses_what_does_not_fit():
    from verydeep.models.vgg import initialise_from_a

    small = {"head": "small", "num_classes": 10, "in_channels": 1}
    deep = verydeep.create_model("vgg_d", **small)
    with pytest.raises(ValueError, match="from a trained configuration A, not B"):
        initialise_from_a(deep, verydeep.create_model("vgg_b", **small))
    with pytest.raises(ValueError, match="the head and number of classes must match"):
        initialise_from_a(deep, verydeep.create_model("vgg_a", **{**small, "num_classes": 5}))


def test_impossible_inputs_and_options_say_what_is_valid():
    with pytest.raises(ValueError, match="224x224"):
        verydeep.create_model("vgg_a", image_size=32)
    with pytest.raises(ValueError, match="too small for five 2x2 max-pools"):
        verydeep.create_model("vgg_a", head="small", image_size=16)
    with pytest.raises(ValueError, match="224x224"):
        verydeep.create_model("vgg_a").eval()(torch.randn(1, 3, 64, 64))
    with pytest.raises(ValueError, match="'A', 'B' and 'C'"):
        verydeep.create_model("resnet20", shortcut="D")
    with pytest.raises(ValueError, match="unknown model 'resnet21'.*resnet20"):
        verydeep.create_model("resnet21")
    with pytest.raises(ValueError, match="no option depth; valid options: num_classes"):
        verydeep.create_model("resnet20", depth=3)
    with pytest.raises(ValueError, match="no shortcuts"):
        verydeep.create_model("plain20", shortcut="B")
    with pytest.raises(ValueError, match="small"):
        verydeep.create_model("vgg_a", head="small").dense()
    with pytest.raises(ValueError, match="bottleneck blocks"):
        verydeep.create_model("resnet18", stride_at="3x3")


def test_zero_pad_shortcut_subsamples_and_pads_with_zeros():
    x = torch.arange(2 * 4 * 4, dtype=torch.float).view(1, 2, 4, 4)
    y = ZeroPadShortcut(2, 5, stride=2)(x)
    assert y.shape == (1, 5, 2, 2)
    torch.testing.assert_close(y[:, :2], x[:, :, ::2, ::2])
    assert y[:, 2:].abs().sum() == 0
    assert count_parameters(ZeroPadShortcut(2, 5, 2)) == 0


def blocks(model):
    return [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]


def projections(model):
    return [b for b in blocks(model) if isinstance(b.shortcut, nn.Sequential)]


@pytest.mark.parametrize("depth", [20, 32, 44, 56, 110, 1202])
def test_plain_and_option_a_resnets_have_the_same_parameters(depth):
    # ResNet Sec. 4.2: "the residual models have exactly the same depth, width, and number of parameters".
    resnet, plain = meta_model(f"resnet{depth}"), meta_model(f"plain{depth}")
    assert count_parameters(resnet) == count_parameters(plain)
    assert all(b.shortcut is None for b in blocks(plain))
    assert all(b.shortcut is not None for b in blocks(resnet))


@pytest.mark.parametrize("depth", [18, 34, 50])
def test_imagenet_plain_nets_equal_option_a_resnets(depth):
    resnet, plain = meta_model(f"resnet{depth}", shortcut="A"), meta_model(f"plain{depth}")
    assert count_parameters(resnet) == count_parameters(plain)


def test_option_b_projects_only_where_dimensions_change_and_c_everywhere():
    a, b, c = (meta_model("resnet34", shortcut=s) for s in "ABC")
    changes = [blk for blk in blocks(b) if blk.conv1.stride != (1, 1) or blk.conv1.in_channels != blk.bn2.num_features]
    assert len(changes) == 3  # conv3_1, conv4_1, conv5_1
    assert projections(b) == changes
    assert len(projections(c)) == len(blocks(c)) == 16
    assert projections(a) == []
    # B adds exactly the three projections' parameters.
    extra = sum(count_parameters(blk.shortcut) for blk in projections(b))
    assert count_parameters(b) - count_parameters(a) == extra
    # Bottlenecks: conv2_1 also changes dimension (64 -> 256), so B projects 4 times in ResNet-50.
    assert len(projections(meta_model("resnet50"))) == 4
    assert len(projections(meta_model("resnet20", shortcut="B"))) == 2


def test_cifar_nets_default_to_option_a_and_imagenet_to_b():
    assert projections(meta_model("resnet56")) == []
    assert any(isinstance(b.shortcut, ZeroPadShortcut) for b in blocks(meta_model("resnet56")))
    assert len(projections(meta_model("resnet18"))) == 3


def test_cifar_resnets_have_6n_plus_2_layers_on_three_maps():
    for depth in (20, 56, 110):
        model = meta_model(f"resnet{depth}")
        weighted = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        assert len(weighted) == depth
        assert [model.layer1[0].conv1.out_channels, model.layer2[0].conv1.out_channels] == [16, 32]
        assert model.layer3[0].conv1.out_channels == 64 and not hasattr(model, "layer4")
    features = verydeep.create_model("resnet20").forward_features(torch.randn(1, 3, 32, 32))
    assert features.shape == (1, 64, 8, 8)


def test_stride_placement():
    paper, v15 = meta_model("resnet50"), meta_model("resnet50", stride_at="3x3")
    assert paper.layer2[0].conv1.stride == (2, 2) and paper.layer2[0].conv2.stride == (1, 1)
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)
    assert count_parameters(paper) == count_parameters(v15)


def test_zero_init_residual_zeroes_each_blocks_last_bn():
    model = verydeep.create_model("resnet50", zero_init_residual=True)
    assert all(b.bn3.weight.abs().sum() == 0 for b in blocks(model))
    assert all(b.bn2.weight.abs().sum() > 0 for b in blocks(model))
    with pytest.raises(ValueError, match="plain"):
        verydeep.create_model("plain20", zero_init_residual=True)


def test_he_init():
    torch.manual_seed(0)
    conv = verydeep.create_model("resnet56").layer3[4].conv1
    fan_out = conv.out_channels * 9
    assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.05)
