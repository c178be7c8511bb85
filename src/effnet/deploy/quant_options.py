"""How to quantise to int8, for both quantisers (onnxruntime's QDQ quantiser and NNCF for
OpenVINO): the calibration method, the groups of layers kept in fp32, NNCF's preset and bias
correction. One value, :class:`QuantOptions`, accepted by ``quantize_onnx`` and
``quantize_openvino``.

Groups are named parts of an exported EfficientNet, found by the node names the exporter
writes from the module names (``/stem/conv/Conv``, ``/stages.3/stages.3.1/se/reduce/Conv``,
``/classifier/Gemm``): ``stem``, ``se`` (every squeeze-and-excitation gate: its pooling, two
convs, activations and the sigmoid gate's multiply), ``head`` (the final 1x1 conv), ``classifier``
and ``stage0``, ``stage1``, ... (every node of one stage, its SE gates included). OpenVINO keeps
ONNX node names when it reads or converts an ONNX file, so the same patterns name the same
nodes in both. ExecuTorch's int8 (PT2E) quantises the model itself: there the same groups are
found by module name (``group_pattern(group, modules=True)``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

# The calibration each quantiser offers. onnxruntime: its CalibrationMethod. NNCF: its range
# estimators (percentile = the mean over batches of the 0.01% / 99.99% quantiles; histogram =
# ranges that minimise the quantisation error of a histogram of each activation).
ONNX_CALIBRATIONS = ("minmax", "percentile", "entropy")
OPENVINO_CALIBRATIONS = ("minmax", "mean_minmax", "percentile", "histogram")
PRESETS = ("performance", "mixed")
BIAS_CORRECTIONS = ("fast", "full", "none")

FIXED_GROUPS = {
    "stem": r"^/stem/",
    "se": r"/se/",
    "head": r"^/head/",
    # OpenVINO's converter names the classifier's MatMul after the graph output (export's "logits")
    "classifier": r"^/classifier/|^logits$",
}
_STAGE = re.compile(r"^stage(\d+)$")


# The same groups by PyTorch module name (``stem.conv``, ``stages.3.1.se.reduce``,
# ``classifier``), as a PT2E graph's nodes carry them: ExecuTorch's int8 quantises the model,
# not a file.
MODULE_GROUPS = {"stem": r"^stem(\.|$)", "se": r"(^|\.)se(\.|$)", "head": r"^head(\.|$)",
                 "classifier": r"^classifier(\.|$)"}


def group_pattern(group: str, *, modules: bool = False) -> str:
    """The regular expression (searched in node names, or in module names with ``modules``) of
    a named group."""
    fixed = MODULE_GROUPS if modules else FIXED_GROUPS
    if group in fixed:
        return fixed[group]
    match = _STAGE.match(group)
    if match:
        return rf"^stages\.{int(match.group(1))}(\.|$)" if modules else rf"^/stages\.{int(match.group(1))}/"
    raise ValueError(f"unknown layer group {group!r}; groups are {', '.join(FIXED_GROUPS)} and stage0, stage1, ...")


def group_nodes(names: Iterable[str], group: str) -> list[str]:
    """The node names of ``names`` that belong to ``group``."""
    pattern = re.compile(group_pattern(group))
    return [name for name in names if pattern.search(name)]


def groups_of(names: Iterable[str], *, modules: bool = False) -> tuple[str, ...]:
    """The groups an exported model has (those with at least one node), in network order;
    ``modules``: of a model, from its module names (``model.named_modules()``)."""
    names = list(names)
    stage = r"^stages\.(\d+)(\.|$)" if modules else r"^/stages\.(\d+)/"
    stages = sorted({int(m.group(1)) for n in names if (m := re.match(stage, n))})
    candidates = ["stem", "se", *(f"stage{i}" for i in stages), "head", "classifier"]
    return tuple(g for g in candidates if any(re.search(group_pattern(g, modules=modules), n) for n in names))


def parse_groups(text: str) -> tuple[str, ...]:
    """``"stem,se,classifier"`` -> ("stem", "se", "classifier"), each name checked."""
    groups = tuple(part.strip() for part in text.split(",") if part.strip())
    for group in groups:
        group_pattern(group)
    return groups


@dataclass(frozen=True)
class QuantOptions:
    """How to quantise.

    ``calibration``: how activation ranges are set from the calibration images; ``None`` is
    each quantiser's default (onnxruntime: minmax; NNCF: its own per-preset estimators).
    ``keep_fp32``: groups left in fp32 (see the module docstring); pick them by measuring,
    with :func:`effnet.deploy.sensitivity.find_fp32_groups`. ``preset`` (NNCF): ``performance``
    quantises activations symmetrically, ``mixed`` asymmetrically (better for activations that
    are not centred on zero, such as SiLU's). ``bias_correction`` (NNCF): ``fast`` (NNCF's
    default), ``full`` (slower, layer by layer) or ``none``. ``percentile`` (onnxruntime): the
    percentile its percentile calibration keeps. Weights are always per output channel.
    """

    calibration: str | None = None
    keep_fp32: tuple[str, ...] = field(default_factory=tuple)
    preset: str = "performance"
    bias_correction: str = "fast"
    percentile: float = 99.999

    def __post_init__(self) -> None:
        if isinstance(self.keep_fp32, str):
            object.__setattr__(self, "keep_fp32", parse_groups(self.keep_fp32))
        for group in self.keep_fp32:
            group_pattern(group)
        known = sorted(set(ONNX_CALIBRATIONS) | set(OPENVINO_CALIBRATIONS))
        if self.calibration is not None and self.calibration not in known:
            raise ValueError(f"unknown calibration {self.calibration!r}; choose one of {', '.join(known)}")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown NNCF preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.bias_correction not in BIAS_CORRECTIONS:
            raise ValueError(f"unknown bias correction {self.bias_correction!r}; choose one of "
                             f"{', '.join(BIAS_CORRECTIONS)}")
        if not 50.0 < self.percentile <= 100.0:
            raise ValueError(f"percentile must be in (50, 100], got {self.percentile}")

    def calibration_for(self, runtime: str) -> str | None:
        """The calibration for ``runtime`` ("onnx" or "openvino"), refused where that quantiser lacks it."""
        offered = ONNX_CALIBRATIONS if runtime == "onnx" else OPENVINO_CALIBRATIONS
        if self.calibration is not None and self.calibration not in offered:
            quantiser = "onnxruntime" if runtime == "onnx" else "NNCF (OpenVINO)"
            raise ValueError(f"{quantiser} has no {self.calibration!r} calibration; choose one of {', '.join(offered)}")
        return self.calibration

    def excluded_nodes(self, names: Iterable[str]) -> list[str]:
        """The node names of ``names`` kept in fp32 (every node of every kept group)."""
        names = list(names)
        kept: dict[str, None] = {}
        for group in self.keep_fp32:
            found = group_nodes(names, group)
            if not found:
                raise ValueError(f"the model has no {group!r} layers to keep in fp32; it has {', '.join(groups_of(names))}")
            kept.update(dict.fromkeys(found))
        return list(kept)

    def with_fp32(self, groups: Iterable[str]) -> QuantOptions:
        return QuantOptions(self.calibration, tuple(groups), self.preset, self.bias_correction, self.percentile)


__all__ = ["BIAS_CORRECTIONS", "FIXED_GROUPS", "ONNX_CALIBRATIONS", "OPENVINO_CALIBRATIONS", "PRESETS", "QuantOptions",
           "group_nodes", "group_pattern", "groups_of", "parse_groups"]
