"""Our networks against the papers' published figures."""

import pytest

from verydeep.summary import count_macs, count_parameters, meta_model, paper_rows

# VGG Table 2, parameters in millions; D and E exactly as torchvision also reports.
TABLE2 = {"vgg_a": 133, "vgg_a_lrn": 133, "vgg_b": 133, "vgg_c": 134, "vgg_d": 138, "vgg_e": 144}
# ResNet Table 1, multiply-adds x 10^9 (VGG-16/19 "by the same count").
TABLE1_GMACS = {"resnet18": 1.8, "resnet34": 3.6, "resnet50": 3.8, "resnet101": 7.6, "resnet152": 11.3,
                "vgg_d": 15.3, "vgg_e": 19.6}  # fmt: skip
# ResNet Table 6, parameters in millions.
TABLE6 = {"resnet20": 0.27, "resnet32": 0.46, "resnet44": 0.66, "resnet56": 0.85, "resnet110": 1.7, "resnet1202": 19.4}


@pytest.mark.parametrize("name", TABLE2)
def test_vgg_parameters_round_to_table_2(name):
    assert round(count_parameters(meta_model(name)) / 1e6) == TABLE2[name]


def test_vgg_d_and_e_parameters_exactly():
    assert count_parameters(meta_model("vgg_d")) == 138_357_544
    assert count_parameters(meta_model("vgg_e")) == 143_667_240


@pytest.mark.parametrize("name", TABLE1_GMACS)
def test_imagenet_multiply_adds_within_5_percent_of_table_1(name):
    gmacs = count_macs(meta_model(name)) / 1e9
    assert gmacs == pytest.approx(TABLE1_GMACS[name], rel=0.05)


def test_torchvision_stride_placement_costs_what_torchvision_says():
    # torchvision documents 4.09 GFLOPS (multiply-adds) for its v1.5 ResNet-50.
    assert count_macs(meta_model("resnet50", stride_at="3x3")) / 1e9 == pytest.approx(4.09, abs=0.01)
    assert count_macs(meta_model("resnet50")) < count_macs(meta_model("resnet50", stride_at="3x3"))


@pytest.mark.parametrize("name", TABLE6)
def test_cifar_parameters_round_to_table_6(name):
    millions = count_parameters(meta_model(name)) / 1e6  # the CIFAR nets are CIFAR-10 nets unless told
    digits = 2 if TABLE6[name] < 1 else 1
    assert round(millions, digits) == TABLE6[name]


def test_the_cifar_nets_a_user_first_builds_have_table_6s_parameters():
    import verydeep

    count = lambda name, **o: sum(p.numel() for p in verydeep.create_model(name, **o).parameters())  # noqa: E731
    # ResNet-20: conv1 3*16*9 + BN 32; 9 blocks of two 3x3 convs with their BNs over widths 16, 32, 64 (option A:
    # no shortcut weights); fc 64*10 + 10
    stage = lambda c_in, c: c_in * c * 9 + c * c * 9 + 4 * c + 2 * (c * c * 9 + c * c * 9 + 4 * c)  # noqa: E731
    assert count("resnet20") == 3 * 16 * 9 + 32 + stage(16, 16) + stage(16, 32) + stage(32, 64) + 650 == 269_722
    assert count("resnet56") == 853_018 and count("plain20", num_classes=100) == 269_722 + 90 * (64 + 1)
    assert count("resnet18") == 11_689_512  # the ImageNet nets keep ImageNet's 1000 classes


def test_summary_paper_rows_all_agree():
    rows = paper_rows()
    assert {r.source for r in rows} == {"VGG Table 2", "ResNet Table 1", "ResNet Table 6", "VGG Sec. 2.3"}
    assert [r.item for r in rows if not r.agrees] == []


def test_the_shallow_5x5_net_of_vgg_sec_4_1_is_b_with_each_pair_of_3x3s_one_5x5():
    # By its definition: B's five blocks of two 3x3 convs become one 5x5 conv each (the same receptive field),
    # then the paper's head: FC-4096 on the 7x7x512 map, FC-4096, FC-1000.
    convs = [(3, 64), (64, 128), (128, 256), (256, 512), (512, 512)]
    fcs = [(7 * 7 * 512, 4096), (4096, 4096), (4096, 1000)]
    expected = sum(5 * 5 * c_in * c_out + c_out for c_in, c_out in convs) + sum(i * o + o for i, o in fcs)
    model = meta_model("vgg_b_5x5")
    assert count_parameters(model) == expected == 134_503_528
    kernels = [m.kernel_size for m in model.features if hasattr(m, "kernel_size") and m.__class__.__name__ == "Conv2d"]
    assert kernels == [(5, 5)] * 5
    assert count_parameters(meta_model("vgg_b")) - expected == sum(  # 2 x 9 against 25 weights per channel pair
        9 * c_in * c_out + c_out + 9 * c_out * c_out + c_out - 25 * c_in * c_out - c_out for c_in, c_out in convs
    )


def test_width_scales_every_vgg_layer_and_the_small_heads_fc():
    quarter = meta_model("vgg_d", head="small", image_size=28, in_channels=1, num_classes=10, width=0.25)
    widths = [m.out_channels for m in quarter.features if m.__class__.__name__ == "Conv2d"]
    assert widths == [16, 16, 32, 32, 64, 64, 64, 128, 128, 128, 128, 128, 128]
    assert [m.out_features for m in quarter.classifier if m.__class__.__name__ == "Linear"] == [128, 128, 10]
    with pytest.raises(ValueError, match="width scales the small-image head"):
        meta_model("vgg_d", width=0.5)
