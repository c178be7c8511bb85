"""A network as the pieces a latency table times: the stem, every block, the head conv, and
the pool with the classifier, each named by what decides its cost.

A block's key holds its op, kernel, expansion, SE ratio, whether its identity skip is used,
its input and output width, its stride and its input size, so two blocks with one key run
the same kernels on the same shapes. :func:`skeleton_parts` lists every piece the search
space can produce, with a network that holds it (the table times the piece cut out of that
network's own module, so the table and the builder never disagree about a block).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from torch import nn

from ..model import ConvNet
from ..spec import NetworkSpec, StageSpec
from .space import CHOICES, FILTER_MULTIPLIERS, LAYER_DELTAS, TOKENS_PER_STAGE, Skeleton, decode


@dataclass(frozen=True)
class Part:
    """One timed piece: ``key`` names it in the table; ``shape`` is its input (C, H, W);
    ``where`` says where it sits in its network: ``("stem",)``, ``("block", stage, index)``,
    ``("head",)`` or ``("classifier",)``."""

    key: str
    shape: tuple[int, int, int]
    where: tuple[object, ...]


def _down(size: int, stride: int) -> int:
    # Odd kernels with SAME or symmetric padding: ceil(size / stride).
    return -(-size // stride)


def block_key(stage: StageSpec, index: int, size: int) -> str:
    cin, cout = stage.block_channels(index)
    stride = stage.block_stride(index)
    skip = stage.skip and stride == 1 and cin == cout  # a shortcut only where the shape is kept
    return (f"{stage.kind} e{stage.expand_ratio:g} k{stage.kernel} se{stage.se_ratio:g} "
            f"{'skip' if skip else 'noskip'} {cin}>{cout} s{stride} @{size}")


def network_parts(spec: NetworkSpec) -> list[Part]:
    """The pieces of ``spec`` in the order its forward runs them."""
    size = spec.resolution
    stem = spec.stem
    parts = [Part(f"stem {spec.in_chans}>{stem.channels} k{stem.kernel} s{stem.stride}"
                  f"{' pool' if stem.pool else ''} {spec.activation} @{size}", (spec.in_chans, size, size), ("stem",))]
    size = _down(_down(size, stem.stride), 2 if stem.pool else 1)
    for s, stage in enumerate(spec.stages):
        for j in range(stage.repeats):
            cin = stage.block_channels(j)[0]
            parts.append(Part(f"{block_key(stage, j, size)} {spec.activation}", (cin, size, size), ("block", s, j)))
            size = _down(size, stage.block_stride(j))
    last = spec.stages[-1].out_channels
    if spec.head.channels:
        parts.append(Part(f"head {last}>{spec.head.channels} {spec.activation} @{size}", (last, size, size), ("head",)))
    parts.append(Part(f"classifier {spec.num_features}>{spec.num_classes} @{size}",
                      (spec.num_features, size, size), ("classifier",)))
    return parts


def part_module(model: ConvNet, part: Part) -> nn.Module:
    """The module of ``model`` that runs ``part`` (eval mode; dropout is the identity there)."""
    kind = part.where[0]
    if kind == "stem":
        return nn.Sequential(model.stem, model.stem_pool)
    if kind == "block":
        _, stage, index = part.where
        return model.stages[stage][index]  # type: ignore[index]
    if kind == "head":
        return model.head
    return nn.Sequential(model.global_pool, model.classifier)


def _stage_variants(skeleton: Skeleton, stage: int) -> Iterator[tuple[int, ...]]:
    """Token tuples that give stage ``stage`` every (op, kernel, SE, skip, width) with every
    input width and two layers (so its first and a repeated block both appear); the other
    stages take the first choice of each token at the reference's width and depth."""
    reference = [0, 0, 0, 0, FILTER_MULTIPLIERS.index(1.0), LAYER_DELTAS.index(0)] * skeleton.stages
    sizes = [len(c) for c in CHOICES]
    previous_widths = range(sizes[4]) if stage > 0 else (None,)
    for choice in _product(sizes[:5]):
        for previous in previous_widths:
            tokens = list(reference)
            base = stage * TOKENS_PER_STAGE
            tokens[base:base + 5] = choice
            tokens[base + 5] = LAYER_DELTAS.index(1)  # layers +1: at least two blocks (every reference stage has one or more)
            if previous is not None:
                tokens[base - TOKENS_PER_STAGE + 4] = previous
            yield tuple(tokens)


def _product(sizes: list[int]) -> Iterator[tuple[int, ...]]:
    if not sizes:
        yield ()
        return
    for head in range(sizes[0]):
        for tail in _product(sizes[1:]):
            yield (head, *tail)


def skeleton_parts(skeleton: Skeleton) -> dict[str, tuple[NetworkSpec, Part]]:
    """Every piece a network of the space can hold, each with one network that holds it; and
    the pieces of the skeleton's reference (the hand design, which may lie outside the space)."""
    found = {part.key: (skeleton.reference, part) for part in network_parts(skeleton.reference)}
    for stage in range(skeleton.stages):
        for tokens in _stage_variants(skeleton, stage):
            spec = decode(skeleton, tokens)
            for part in network_parts(spec):
                found.setdefault(part.key, (spec, part))
    return found
