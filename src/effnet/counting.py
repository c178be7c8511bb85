"""Parameters and multiply-adds of a spec, computed without building it.

The walk mirrors ``effnet.nn.blocks`` layer by layer, so the parameter count equals the built
module's exactly. Multiply-adds count convolutions (squeeze-and-excitation convs included)
and the classifier, as the paper's FLOPS do (``torch.utils.flop_counter`` reports twice these).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .spec import SpecError, NetworkSpec, StageSpec

_OPERATOR = {"mbconv": "MBConv", "fused": "Fused-MBConv", "ds": "DSConv", "bottleneck": "Bottleneck",
             "conv": "Conv"}


@dataclass
class Cost:
    params: int = 0
    madds: int = 0

    def add(self, other: Cost) -> None:
        self.params += other.params
        self.madds += other.madds


@dataclass(frozen=True)
class StageRow:
    """One row of a Table-1-style summary."""

    operator: str
    resolution: tuple[int, int]
    channels: int
    layers: int
    params: int
    madds: int


@dataclass(frozen=True)
class Counts:
    params: int
    madds: int
    resolution: tuple[int, int]
    rows: tuple[StageRow, ...] = field(default=())


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _conv(h: int, w: int, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1,
          bias: bool = False, bn: bool = True) -> tuple[Cost, int, int]:
    """A conv's cost and output size. SAME and symmetric (k//2) padding both give
    ceil(size / stride) for odd kernels."""
    oh, ow = _ceil_div(h, stride), _ceil_div(w, stride)
    weights = k * k * (cin // groups) * cout
    params = weights + (cout if bias else 0) + (2 * cout if bn else 0)
    return Cost(params, oh * ow * weights), oh, ow


def _se(channels: int, reduced: int) -> Cost:
    return Cost(2 * channels * reduced + reduced + channels, 2 * channels * reduced)


def _block(stage: StageSpec, in_ch: int, out_ch: int, stride: int, h: int, w: int) -> tuple[Cost, int, int]:
    """Cost of one block; mirrors the module constructors in effnet.nn.blocks."""
    cost = Cost()
    se_reduced = max(1, int(in_ch * stage.se_ratio))
    identity_fits = stride == 1 and in_ch == out_ch

    def conv(cin: int, cout: int, k: int = 1, s: int = 1, groups: int = 1) -> None:
        nonlocal h, w
        c, h, w = _conv(h, w, cin, cout, k, s, groups)
        cost.add(c)

    if stage.kind == "mbconv":
        mid = max(1, round(in_ch * stage.expand_ratio))
        if stage.expand_ratio != 1:
            conv(in_ch, mid)
        conv(mid, mid, stage.kernel, stride, groups=mid)
        if stage.se_ratio > 0:
            cost.add(_se(mid, se_reduced))
        conv(mid, out_ch)
    elif stage.kind == "fused":
        if stage.expand_ratio == 1:  # one kxk conv is the whole block
            conv(in_ch, out_ch, stage.kernel, stride)
            if stage.se_ratio > 0:
                cost.add(_se(out_ch, se_reduced))
        else:
            mid = max(1, round(in_ch * stage.expand_ratio))
            conv(in_ch, mid, stage.kernel, stride)
            if stage.se_ratio > 0:
                cost.add(_se(mid, se_reduced))
            conv(mid, out_ch)
    elif stage.kind == "ds":
        conv(in_ch, in_ch, stage.kernel, stride, groups=in_ch)
        if stage.se_ratio > 0:
            cost.add(_se(in_ch, se_reduced))
        conv(in_ch, out_ch)
    elif stage.kind == "bottleneck":
        mid = max(1, round(out_ch * stage.expand_ratio))
        h0, w0 = h, w
        conv(in_ch, mid)
        conv(mid, mid, stage.kernel, stride)
        if stage.se_ratio > 0:
            cost.add(_se(mid, se_reduced))
        conv(mid, out_ch)
        if stage.skip and not identity_fits:
            shortcut, _, _ = _conv(h0, w0, in_ch, out_ch, 1, stride)
            cost.add(shortcut)
    elif stage.kind == "conv":
        conv(in_ch, out_ch, stage.kernel, stride)
        if stage.se_ratio > 0:
            cost.add(_se(out_ch, se_reduced))
    else:  # pragma: no cover - StageSpec validates kinds
        raise ValueError(stage.kind)
    return cost, h, w


def count(spec: NetworkSpec, resolution: int | tuple[int, int] | None = None) -> Counts:
    """Parameters and multiply-adds of ``spec`` at ``resolution`` (default: its own)."""
    size = resolution if resolution is not None else spec.resolution
    h, w = (size, size) if isinstance(size, int) else size
    if any(isinstance(side, bool) or not isinstance(side, int) or side < 1 for side in (h, w)):
        raise SpecError(f"resolution must be a positive number of pixels, got {size!r}")
    rows: list[StageRow] = []
    total = Cost()

    stem, oh, ow = _conv(h, w, spec.in_chans, spec.stem.channels, spec.stem.kernel, spec.stem.stride)
    rows.append(StageRow(f"Conv{spec.stem.kernel}x{spec.stem.kernel}", (h, w), spec.stem.channels, 1,
                         stem.params, stem.madds))
    total.add(stem)
    h, w = oh, ow
    if spec.stem.pool:  # 3x3/2 max pool with padding 1: ceil(size / 2), no parameters
        h, w = _ceil_div(h, 2), _ceil_div(w, 2)

    for stage in spec.stages:
        stage_cost, h_in, w_in = Cost(), h, w
        for j in range(stage.repeats):
            in_ch, out_ch = stage.block_channels(j)
            block_cost, h, w = _block(stage, in_ch, out_ch, stage.block_stride(j), h, w)
            stage_cost.add(block_cost)
        rows.append(StageRow(_operator(stage), (h_in, w_in), stage.out_channels, stage.repeats,
                             stage_cost.params, stage_cost.madds))
        total.add(stage_cost)

    head = Cost()
    if spec.head.channels:
        conv_cost, _, _ = _conv(h, w, spec.stages[-1].out_channels, spec.head.channels, 1)
        head.add(conv_cost)
    if spec.num_classes:
        head.add(Cost(spec.num_features * spec.num_classes + spec.num_classes,
                      spec.num_features * spec.num_classes))
    operator = ("Conv1x1 & " if spec.head.channels else "") + "Pooling & FC"
    rows.append(StageRow(operator, (h, w), spec.num_classes or spec.num_features, 1, head.params, head.madds))
    total.add(head)
    return Counts(total.params, total.madds, (size, size) if isinstance(size, int) else size, tuple(rows))


def _operator(stage: StageSpec) -> str:
    name = _OPERATOR[stage.kind]
    if stage.kind in ("mbconv", "fused"):
        name += f"{stage.expand_ratio:g}"
    name += f", k{stage.kernel}x{stage.kernel}"
    if stage.se_ratio > 0 and stage.kind not in ("mbconv",):
        name += ", SE"
    return name


def count_params(spec: NetworkSpec) -> int:
    return count(spec).params


def count_madds(spec: NetworkSpec, resolution: int | tuple[int, int] | None = None) -> int:
    return count(spec, resolution).madds
