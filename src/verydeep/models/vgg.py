"""VGG configurations A, A-LRN, B, C, D and E (Simonyan & Zisserman, Table 1).

The table below is Table 1, one column per configuration and one line per block of conv layers; every
block ends in a 2x2/2 max-pool. ``conv3-64`` is a 3x3 convolution with 64 filters (stride 1, pad 1),
``conv1-256`` a 1x1 convolution, ``LRN`` AlexNet's local response normalisation. ReLU follows every
convolution (Sec. 2.1) and is not written, as in the paper.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from ..registry import register
from .layers import alexnet_lrn

Block = tuple[str, ...]

VGG_TABLE1: dict[str, tuple[Block, ...]] = {
    "A": (
        ("conv3-64",),
        ("conv3-128",),
        ("conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512"),
    ),
    "A-LRN": (
        ("conv3-64", "LRN"),
        ("conv3-128",),
        ("conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512"),
    ),
    "B": (
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512"),
    ),
    "C": (
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256", "conv1-256"),
        ("conv3-512", "conv3-512", "conv1-512"),
        ("conv3-512", "conv3-512", "conv1-512"),
    ),
    "D": (
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512", "conv3-512"),
    ),
    "E": (
        ("conv3-64", "conv3-64"),
        ("conv3-128", "conv3-128"),
        ("conv3-256", "conv3-256", "conv3-256", "conv3-256"),
        ("conv3-512", "conv3-512", "conv3-512", "conv3-512"),
        ("conv3-512", "conv3-512", "conv3-512", "conv3-512"),
    ),
}

# Sec. 4.1: "a shallow net ... derived from B by replacing each pair of 3x3 conv. layers with a single 5x5 conv.
# layer (which has the same receptive field)". Not a column of Table 1, so declared beside it.
VGG_SEC41: dict[str, tuple[Block, ...]] = {
    "B-5x5": (
        ("conv5-64",),
        ("conv5-128",),
        ("conv5-256",),
        ("conv5-512",),
        ("conv5-512",),
    ),
}
CONFIGURATIONS = {**VGG_TABLE1, **VGG_SEC41}

FC_WIDTH = 4096  # FC-4096, FC-4096, FC-1000 (Table 1)
SMALL_FC_WIDTH = 512  # the small-image head's hidden width (ours, not the paper's)
PAPER_INPUT = 224
SMALL_MIN_INPUT = 28

Head = Literal["imagenet", "small"]
Init = Literal["normal", "glorot", "kaiming"]


def parse_layer(token: str) -> tuple[int, int] | None:
    """``"conv3-256"`` -> (3, 256); ``"LRN"`` -> None."""
    if token == "LRN":
        return None
    kind, width = token.split("-")
    if not kind.startswith("conv"):
        raise ValueError(f"unknown VGG layer {token!r}")
    return int(kind[4:]), int(width)


def make_features(
    config: str, in_channels: int = 3, batch_norm: bool = False, ceil_mode: bool = False, width: float = 1.0
) -> nn.Sequential:
    """The convolutional part of a configuration, one flat Sequential like torchvision's ``features``; ``width``
    scales every layer's filters (Table 1's at 1)."""
    layers: list[nn.Module] = []
    channels = in_channels
    for block in CONFIGURATIONS[config]:
        for token in block:
            spec = parse_layer(token)
            if spec is None:
                layers.append(alexnet_lrn())
                continue
            size, filters = spec
            filters = max(1, round(filters * width))
            layers.append(nn.Conv2d(channels, filters, size, padding=size // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(filters))
            layers.append(nn.ReLU(inplace=True))
            channels = filters
        layers.append(nn.MaxPool2d(2, 2, ceil_mode=ceil_mode))
    return nn.Sequential(*layers)


def make_classifier(in_features: int, width: int, num_classes: int, dropout: float) -> nn.Sequential:
    """FC-width, FC-width, FC-num_classes, dropout on the first two (Sec. 3.1)."""
    return nn.Sequential(
        nn.Linear(in_features, width),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(width, width),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(width, num_classes),
    )


class VGG(nn.Module):
    """A VGG configuration from Table 1 (or Sec. 4.1's B-5x5).

    head="imagenet" is the paper's: the five pools leave a 7x7x512 map on a 224x224 input, followed by
    FC-4096, FC-4096 and FC-num_classes. It accepts only inputs of 224-255 pixels; use :meth:`dense` for
    larger images (the paper's dense evaluation, Sec. 3.2).

    head="small" is for 28-64 px images (Fashion-MNIST, CIFAR): the same convolutional layers, the five
    pools rounding up (so 28 px ends at 1x1 instead of vanishing), a global average pool and
    FC-512, FC-512, FC-num_classes with the same dropout. It is not in the paper.

    init="normal" draws weights from N(0, init_std^2) with init_std=0.01, as most implementations read the
    paper's "zero mean and 10^-2 variance" (Sec. 3.1; by the letter that would be std 0.1); "glorot" is
    the initialisation the paper found works without pre-training; "kaiming" is He et al.'s. Biases are
    zero in every case.

    width scales the filters of every conv and the small head's FC layers (0.25: a quarter of Table 1's, a
    sixteenth of the multiply-adds): the depth comparisons hold the width fixed. Not in the paper.
    """

    OPTIONS = (
        "num_classes", "in_channels", "batch_norm", "head", "image_size", "dropout", "init", "init_std", "width",
    )  # fmt: skip

    def __init__(
        self,
        config: str,
        num_classes: int = 1000,
        in_channels: int = 3,
        batch_norm: bool = False,
        head: Head = "imagenet",
        image_size: int | None = None,
        dropout: float = 0.5,
        init: Init = "normal",
        init_std: float = 0.01,
        width: float = 1.0,
    ):
        super().__init__()
        if config not in CONFIGURATIONS:
            raise ValueError(f"unknown VGG configuration {config!r}; valid: {', '.join(CONFIGURATIONS)}")
        if head not in ("imagenet", "small"):
            raise ValueError(f"unknown head {head!r}; valid heads are 'imagenet' (224 px) and 'small' (28-64 px)")
        if init not in ("normal", "glorot", "kaiming"):
            raise ValueError(f"unknown init {init!r}; valid: 'normal', 'glorot', 'kaiming'")
        self.config, self.head = config, head
        self.image_size = image_size or (PAPER_INPUT if head == "imagenet" else 32)
        check_input_size(self.image_size, head)
        if head == "imagenet" and width != 1.0:
            raise ValueError("width scales the small-image head's nets; the paper's head is Table 1's, width 1")
        self.features = make_features(config, in_channels, batch_norm, ceil_mode=head == "small", width=width)
        last = max(1, round(512 * width))
        if head == "imagenet":
            self.classifier = make_classifier(last * 7 * 7, FC_WIDTH, num_classes, dropout)
        else:
            self.classifier = make_classifier(last, max(1, round(SMALL_FC_WIDTH * width)), num_classes, dropout)
        init_vgg(self, init, init_std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if self.head == "small":
            return self.classifier(x.mean((2, 3)))
        if x.shape[-2:] != (7, 7):
            raise ValueError(
                f"the paper's VGG head needs a 224x224 input (7x7 after five pools), got a "
                f"{tuple(x.shape[-2:])} map; use model.dense() for larger images or head='small'"
            )
        return self.classifier(torch.flatten(x, 1))

    def dense(self) -> DenseVGG:
        """The fully convolutional form of Sec. 3.2, sharing this model's weights."""
        if self.head != "imagenet":
            raise ValueError(
                "the dense form converts the paper's FC-4096 head; this model has head='small', "
                "which already averages over space and takes any size of at least 28 px as it is"
            )
        return DenseVGG(self)


class DenseVGG(nn.Module):
    """Dense evaluation (VGG Sec. 3.2): FC6 becomes a 7x7 conv, FC7 and FC8 1x1 convs.

    Applied to a whole (uncropped) image it gives a class-score map, spatially averaged into one score
    per class. On a 224x224 image the map is 1x1 and the scores equal the FC form's.
    """

    def __init__(self, vgg: VGG):
        super().__init__()
        self.features = vgg.features
        fc6, fc7, fc8 = (m for m in vgg.classifier if isinstance(m, nn.Linear))
        dropout = next(m.p for m in vgg.classifier if isinstance(m, nn.Dropout))
        self.classifier = nn.Sequential(
            linear_as_conv(fc6, 7),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            linear_as_conv(fc7, 1),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            linear_as_conv(fc8, 1),
        )

    def score_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score_map(x).mean((2, 3))


def linear_as_conv(fc: nn.Linear, size: int) -> nn.Conv2d:
    """A conv holding ``fc``'s weights (shared, not copied) laid out as size x size kernels."""
    in_channels = fc.in_features // (size * size)
    # built on the meta device: its own initialisation (102M numbers for FC6) would be thrown away at once
    conv = nn.Conv2d(in_channels, fc.out_features, size, device="meta")
    conv.weight = nn.Parameter(fc.weight.view(fc.out_features, in_channels, size, size))
    conv.bias = fc.bias
    return conv


def conv_positions(model: VGG) -> list[tuple[int, int, nn.Conv2d]]:
    """(block, position in block, conv) for every conv layer, in order."""
    positions, block, index = [], 0, 0
    for m in model.features:
        if isinstance(m, nn.Conv2d):
            positions.append((block, index, m))
            index += 1
        elif isinstance(m, nn.MaxPool2d):
            block, index = block + 1, 0
    return positions


def initialise_from_a(model: VGG, net_a: VGG) -> list[str]:
    """Copy net A's first four conv layers and its three FC layers into a deeper net (VGG Sec. 3.1).

    "We initialised the first four convolutional layers and the last three fully-connected layers with the
    layers of net A." A's first four convs are conv1_1 (3->64), conv2_1 (64->128), conv3_1 (128->256) and
    conv3_2 (256->256). In B-E the first two of those positions hold 64->64 and 128->128 convs, which cannot
    take them, so we read the sentence by role: each of A's four goes to the conv at the same place (block,
    position in block) of the deeper net, i.e. the 1st, 3rd, 5th and 6th convs of D and E. The rest keep their
    random initialisation. Returns the names of the layers copied.
    """
    if net_a.config not in ("A", "A-LRN"):
        raise ValueError(f"initialisation comes from a trained configuration A, not {net_a.config}")
    targets = {(b, i): conv for b, i, conv in conv_positions(model)}
    names = {m: n for n, m in model.named_modules()}
    copied = []
    with torch.no_grad():
        for block, index, source in conv_positions(net_a)[:4]:
            target = targets[(block, index)]
            if target.weight.shape != source.weight.shape:
                raise ValueError(f"A's conv at block {block + 1}, position {index + 1} does not fit {names[target]}")
            target.weight.copy_(source.weight)
            target.bias.copy_(source.bias)
            copied.append(names[target])
        fcs = [m for m in model.classifier if isinstance(m, nn.Linear)]
        for target, source in zip(fcs, [m for m in net_a.classifier if isinstance(m, nn.Linear)]):
            if target.weight.shape != source.weight.shape:
                raise ValueError(
                    f"A's FC layers {tuple(source.weight.shape)} do not fit {names[target]} "
                    f"{tuple(target.weight.shape)}: the head and number of classes must match"
                )
            target.weight.copy_(source.weight)
            target.bias.copy_(source.bias)
            copied.append(names[target])
    return copied


def check_input_size(size: int, head: Head) -> None:
    if head == "imagenet" and not PAPER_INPUT <= size < PAPER_INPUT + 32:
        raise ValueError(
            f"input size {size} does not fit the paper's VGG head, which needs 224x224 inputs (7x7x512 after "
            f"five 2x2 pools); use head='small' for 28-64 px images or the dense form for larger ones"
        )
    if head == "small" and size < SMALL_MIN_INPUT:
        raise ValueError(
            f"input size {size} is too small for five 2x2 max-pools; the small head needs at least "
            f"{SMALL_MIN_INPUT} px and the paper's head 224 px"
        )


def init_vgg(model: nn.Module, init: Init, std: float) -> None:
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if init == "normal":
                nn.init.normal_(m.weight, 0.0, std)
            elif init == "glorot":
                nn.init.xavier_uniform_(m.weight)
            else:
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


VGG_FACTS = dict(family="vgg", recipe="vgg", input_size=224)


# Table 2's parameter counts are for 1000 classes, 224x224 RGB input and the paper's head.
BN = {"batch_norm": True}  # torchvision's vgg11_bn .. vgg19_bn: Table 1's nets with BN after every conv


@register(
    "vgg_a",
    VGG,
    **VGG_FACTS,
    depth=11,
    paper_name="A",
    torchvision="vgg11",
    aliases=("vgg11",),
    variants={"vgg11_bn": BN},
)
def vgg_a(**options) -> VGG:
    """VGG configuration A, 11 weight layers (Table 2: 133M parameters)."""
    return VGG("A", **options)


@register("vgg_a_lrn", VGG, **VGG_FACTS, depth=11, paper_name="A-LRN")
def vgg_a_lrn(**options) -> VGG:
    """VGG configuration A-LRN: A with AlexNet's LRN after the first conv (133M)."""
    return VGG("A-LRN", **options)


@register(
    "vgg_b",
    VGG,
    **VGG_FACTS,
    depth=13,
    paper_name="B",
    torchvision="vgg13",
    aliases=("vgg13",),
    variants={"vgg13_bn": BN},
)
def vgg_b(**options) -> VGG:
    """VGG configuration B, 13 weight layers (133M)."""
    return VGG("B", **options)


@register("vgg_c", VGG, **VGG_FACTS, depth=16, paper_name="C")
def vgg_c(**options) -> VGG:
    """VGG configuration C, 16 weight layers with three conv1 layers (134M)."""
    return VGG("C", **options)


@register(
    "vgg_d",
    VGG,
    **VGG_FACTS,
    depth=16,
    paper_name="D",
    torchvision="vgg16",
    aliases=("vgg16",),
    variants={"vgg16_bn": BN},
)
def vgg_d(**options) -> VGG:
    """VGG configuration D, 16 weight layers (138,357,544 parameters)."""
    return VGG("D", **options)


@register(
    "vgg_e",
    VGG,
    **VGG_FACTS,
    depth=19,
    paper_name="E",
    torchvision="vgg19",
    aliases=("vgg19",),
    variants={"vgg19_bn": BN},
)
def vgg_e(**options) -> VGG:
    """VGG configuration E, 19 weight layers (143,667,240 parameters)."""
    return VGG("E", **options)


@register("vgg_b_5x5", VGG, **VGG_FACTS, depth=8, paper_name="B-5x5")
def vgg_b_5x5(**options) -> VGG:
    """Sec. 4.1's shallow net: B with each pair of 3x3 convs replaced by one 5x5, 8 weight layers (134,503,528
    parameters: five 5x5 convs of 10.9M and the 123.6M of the FC layers)."""
    return VGG("B-5x5", **options)
