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
    millions = count_parameters(meta_model(name, num_classes=10)) / 1e6
    digits = 2 if TABLE6[name] < 1 else 1
    assert round(millions, digits) == TABLE6[name]


def test_summary_paper_rows_all_agree():
    rows = paper_rows()
    assert {r.source for r in rows} == {"VGG Table 2", "ResNet Table 1", "ResNet Table 6", "VGG Sec. 2.3"}
    assert [r.item for r in rows if not r.agrees] == []
