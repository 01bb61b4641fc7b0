"""The networks of both papers; importing this module registers every model name."""

from . import vgg, resnet  # noqa: I001  (VGG first: the order `verydeep list` shows)
from .layers import ZeroPadShortcut, make_shortcut
from .resnet import BasicBlock, Bottleneck, ResNet
from .vgg import VGG, VGG_TABLE1, DenseVGG

__all__ = [
    "VGG", "VGG_TABLE1", "DenseVGG", "ResNet", "BasicBlock", "Bottleneck", "ZeroPadShortcut", "make_shortcut",
    "resnet", "vgg",
]  # fmt: skip
