"""The papers' published figures, as data: what `verydeep summary --paper` and the experiment reports
set our numbers beside.

[VGG] Simonyan & Zisserman, ICLR 2015 (arXiv 1409.1556). [ResNet] He et al., CVPR 2016 (arXiv 1512.03385).
Errors are percentages; ResNet "FLOPs" are multiply-adds.
"""

from __future__ import annotations

# [VGG] Table 2: parameters in millions (224x224 RGB input, 1000 classes).
VGG_TABLE2_PARAMS_M = {"vgg_a": 133, "vgg_a_lrn": 133, "vgg_b": 133, "vgg_c": 134, "vgg_d": 138, "vgg_e": 144}
VGG_EXACT_PARAMS = {"vgg_d": 138_357_544, "vgg_e": 143_667_240}  # the released models' exact counts

# [VGG] Table 3: single-scale top-1 / top-5 validation error at S=256 (Q=256).
VGG_TABLE3_S256 = {
    "vgg_a": (29.6, 10.4),
    "vgg_a_lrn": (29.7, 10.5),
    "vgg_b": (28.7, 9.9),
    "vgg_c": (28.1, 9.4),
    "vgg_d": (27.0, 8.8),
    "vgg_e": (27.3, 9.0),
}
# [VGG] Table 3, scale jittering in training, S in [256, 512], tested at Q = 384
VGG_TABLE3_JITTERED = {"vgg_c": (27.3, 8.8), "vgg_d": (25.6, 8.1), "vgg_e": (25.5, 8.0)}

# [ResNet] Table 1: multiply-adds (x10^9) at 224x224, stride in the first 1x1 of a bottleneck; VGG by the same count.
RESNET_TABLE1_GMACS = {
    "resnet18": 1.8,
    "resnet34": 3.6,
    "resnet50": 3.8,
    "resnet101": 7.6,
    "resnet152": 11.3,
    "vgg_d": 15.3,
    "vgg_e": 19.6,
}

# [ResNet] Table 2: ImageNet top-1 error, 10-crop.
RESNET_TABLE2_TOP1 = {"plain18": 27.94, "resnet18": 27.88, "plain34": 28.54, "resnet34": 25.03}

# [ResNet] Table 3: 10-crop top-1 / top-5 for ResNet-34 with shortcut options A, B, C.
RESNET_TABLE3_SHORTCUTS = {"A": (25.03, 7.76), "B": (24.52, 7.46), "C": (24.19, 7.40)}

# [ResNet] Table 6: CIFAR-10 parameters (millions) and test error.
CIFAR_TABLE6 = {
    "resnet20": (0.27, 8.75),
    "resnet32": (0.46, 7.51),
    "resnet44": (0.66, 7.17),
    "resnet56": (0.85, 6.97),
    "resnet110": (1.7, 6.43),
    "resnet1202": (19.4, 7.93),
}

# Independent CIFAR-10 reproductions of Fig. 6 (test error, %): plain nets worsen with depth.
FIG6_PLAIN_TEST_ERROR = {"plain20": (9.5, 9.8), "plain56": (12.8, 13.0)}
