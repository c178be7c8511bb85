"""PyTorch layers and blocks built from specs."""

from .blocks import BLOCKS, BlockArgs, Bottleneck, ConvBlock, DepthwiseSeparable, FusedMBConv, MBConv
from .layers import Conv2dSame, ConvBnAct, DropPath, SqueezeExcite, activate, activation, overwrite_allowed, same_padding

__all__ = ["BLOCKS", "BlockArgs", "Bottleneck", "Conv2dSame", "ConvBlock", "ConvBnAct",
           "DepthwiseSeparable", "DropPath", "FusedMBConv", "MBConv", "SqueezeExcite", "activate", "activation",
           "overwrite_allowed", "same_padding"]
