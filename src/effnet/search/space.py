"""MnasNet's factorised hierarchical search space (Tan et al., 2019, section 4.1), as specs.

A skeleton fixes what the search does not choose: the stem, the head, the number of stages,
each stage's stride and its reference width and depth. For every stage the search picks six
tokens:

| token | choices |
|---|---|
| ConvOp | regular conv, SepConv, MBConv expand 3, MBConv expand 6 |
| kernel | 3, 5 |
| SE ratio | 0, 0.25 |
| skip | identity residual, none |
| output filters | 0.75, 1.0, 1.25 x the reference (rounded to a multiple of 8) |
| layers | -1, 0, +1 against the reference (at least 1) |

SepConv is depthwise kxk then a linear 1x1 (MBConv with expand 1), as in MnasNet's and
B0's first stage.

A point of the space is a tuple of 6 x stages integers (indices into those lists); decoding
gives a :class:`~effnet.spec.NetworkSpec`, so counting, building, training, export and the
laboratory all take it unchanged. Every token tuple decodes to a valid network: an identity
skip is used only where a block keeps its shape (stride 1 and as many channels out as in,
i.e. never on a stage's first block when it strides or widens), as the builder does for
B0. MnasNet's third skip choice, pooling, is left out: the paper does not define it, and no
reading of it (pooling the shortcut of a strided block?) is checkable against a reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..scaling import round_filters
from ..spec import NetworkSpec, SpecError, StageSpec
from ..zoo import get_spec

# (kind, expand ratio) of each ConvOp choice.
CONV_OPS = (("conv", 1.0), ("mbconv", 1.0), ("mbconv", 3.0), ("mbconv", 6.0))
KERNELS = (3, 5)
SE_RATIOS = (0.0, 0.25)
SKIPS = (True, False)           # identity, none
FILTER_MULTIPLIERS = (0.75, 1.0, 1.25)
LAYER_DELTAS = (-1, 0, 1)
DECISIONS = ("op", "kernel", "se", "skip", "filters", "layers")
CHOICES = (CONV_OPS, KERNELS, SE_RATIOS, SKIPS, FILTER_MULTIPLIERS, LAYER_DELTAS)
TOKENS_PER_STAGE = len(DECISIONS)


@dataclass(frozen=True)
class Skeleton:
    """What a search keeps fixed: a reference network whose stages give the strides and the
    reference widths and depths; its stem, head and settings are kept as they are."""

    name: str
    reference: NetworkSpec

    @property
    def stages(self) -> int:
        return len(self.reference.stages)

    @property
    def sizes(self) -> tuple[int, ...]:
        """The number of choices of every token, in order."""
        return tuple(len(c) for c in CHOICES) * self.stages

    def size(self) -> int:
        """How many points the space holds (product of the choice counts)."""
        total = 1
        for n in self.sizes:
            total *= n
        return total


def _skeleton(name: str, reference: str, **changes: object) -> Skeleton:
    spec = get_spec(reference)
    return Skeleton(name, spec.replace(**changes) if changes else spec)


def b0_skeleton() -> Skeleton:
    """EfficientNet-B0's 7 stages at 224 px (the paper's own space and cost target)."""
    return _skeleton("b0", "efficientnet_b0")


def fashion_mnist_skeleton() -> Skeleton:
    """The laboratory's base (``fmnist_lab``, 4 stages, 16 px, 1 channel, 10 classes): cheap
    enough that a search trains hundreds of candidates on two CPU cores."""
    return _skeleton("fmnist", "fmnist_lab", bn_momentum=0.1)


SKELETONS = {"b0": b0_skeleton, "fmnist": fashion_mnist_skeleton}


def get_skeleton(name: str) -> Skeleton:
    try:
        return SKELETONS[name]()
    except KeyError:
        raise SpecError(f"unknown skeleton {name!r}; choose one of {', '.join(SKELETONS)}") from None


def check_tokens(skeleton: Skeleton, tokens: Sequence[int]) -> tuple[int, ...]:
    sizes = skeleton.sizes
    tokens = tuple(int(t) for t in tokens)
    if len(tokens) != len(sizes):
        raise SpecError(f"skeleton {skeleton.name!r} takes {len(sizes)} tokens ({skeleton.stages} stages x "
                        f"{TOKENS_PER_STAGE}: {', '.join(DECISIONS)}), got {len(tokens)}")
    for i, (token, n) in enumerate(zip(tokens, sizes)):
        if not 0 <= token < n:
            raise SpecError(f"token {i} (stage {i // TOKENS_PER_STAGE + 1}, {DECISIONS[i % TOKENS_PER_STAGE]}) "
                            f"must be in 0..{n - 1}, got {token}")
    return tokens


def decode(skeleton: Skeleton, tokens: Sequence[int], *, name: str | None = None) -> NetworkSpec:
    """The network a point of the space stands for."""
    tokens = check_tokens(skeleton, tokens)
    ref = skeleton.reference
    stages = []
    channels = ref.stem.channels
    for s, stage in enumerate(ref.stages):
        op, kernel, se, skip, filters, layers = tokens[s * TOKENS_PER_STAGE:(s + 1) * TOKENS_PER_STAGE]
        kind, expand = CONV_OPS[op]
        out = round_filters(stage.out_channels, FILTER_MULTIPLIERS[filters])
        stages.append(StageSpec(kind=kind, repeats=max(1, stage.repeats + LAYER_DELTAS[layers]),
                                kernel=KERNELS[kernel], stride=stage.stride, expand_ratio=expand, in_channels=channels,
                                out_channels=out, se_ratio=SE_RATIOS[se], skip=SKIPS[skip]))
        channels = out
    return ref.replace(name=name or f"{skeleton.name}_search", stages=tuple(stages))


def encode(skeleton: Skeleton, spec: NetworkSpec) -> tuple[int, ...]:
    """The tokens of a network that lies in the space (e.g. B0 itself); raises if it does not."""
    ref = skeleton.reference
    if len(spec.stages) != len(ref.stages):
        raise SpecError(f"{spec.name} has {len(spec.stages)} stages; skeleton {skeleton.name!r} has {len(ref.stages)}")
    tokens: list[int] = []
    for s, (stage, reference) in enumerate(zip(spec.stages, ref.stages)):
        try:
            op = CONV_OPS.index((stage.kind, float(stage.expand_ratio)))
            kernel = KERNELS.index(stage.kernel)
            se = SE_RATIOS.index(float(stage.se_ratio))
            skip = SKIPS.index(stage.skip)
            filters = [round_filters(reference.out_channels, m) for m in FILTER_MULTIPLIERS].index(stage.out_channels)
            layers = LAYER_DELTAS.index(stage.repeats - reference.repeats)
        except ValueError:
            raise SpecError(f"stage {s + 1} of {spec.name} ({stage.kind}, e{stage.expand_ratio:g}, k{stage.kernel}, "
                            f"{stage.out_channels} channels, {stage.repeats} layers) is outside the space") from None
        if stage.stride != reference.stride:
            raise SpecError(f"stage {s + 1} of {spec.name} strides {stage.stride}; the skeleton fixes {reference.stride}")
        tokens += [op, kernel, se, skip, filters, layers]
    return tuple(tokens)


def describe(skeleton: Skeleton, tokens: Sequence[int]) -> list[str]:
    """One line per stage, in the paper's words (e.g. ``MBConv6 k5 SE x3, 40 ch``)."""
    return describe_spec(decode(skeleton, check_tokens(skeleton, tokens)))


def describe_spec(spec: NetworkSpec) -> list[str]:
    """The same lines from a spec, so also for a network outside the space (a hand design)."""
    def name(stage: StageSpec) -> str:
        if stage.kind == "mbconv":
            return "SepConv" if stage.expand_ratio == 1 else f"MBConv{stage.expand_ratio:g}"
        return {"fused": f"FusedMBConv{stage.expand_ratio:g}", "ds": "DSConv", "conv": "Conv"}.get(stage.kind, stage.kind)
    return [f"{name(stage)} k{stage.kernel}{' SE' if stage.se_ratio else ''}{'' if stage.skip else ' noskip'} "
            f"x{stage.repeats}, {stage.out_channels} ch, stride {stage.stride}" for stage in spec.stages]
