"""Which layers to keep in fp32 so that an int8 model stays within an accuracy budget, found by
measuring rather than guessing.

Post-training int8 loses most of its accuracy in a few places (on B0-style networks often the
squeeze-and-excitation gates, whose sigmoid outputs and channel products quantise badly, or
the stem that sees raw pixels); which ones depends on the weights. :func:`find_fp32_groups`
quantises the model once with everything int8, then once per group with that group alone in
fp32, and measures each int8 model against fp32 on check images the calibration never saw.
Groups are ranked by how much error keeping them removes; the ranked groups are added one by one
(a group that does not lower the error in combination is dropped again) until the int8 model
agrees with fp32 within the budget, and then each chosen group is tried without: the result is
a small set, not necessarily the smallest (that would take every subset). When no set tried
meets the budget, the one with the best agreement (fewest groups among equals) is kept.

The score that ranks groups is the mean squared logit error relative to the fp32 logits'
mean square (it moves smoothly, where top-1 agreement on a few dozen images moves in steps);
the budget is on top-1 agreement: at most ``budget`` of the check images may change class.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .executorch import export_executorch, quantize_int8
from .openvino import OpenVinoRunner, quantize_openvino, require_openvino
from .quant_options import QuantOptions, groups_of
from .quantize import quantize_onnx
from .runtime import OnnxRunner

RUNTIMES = ("onnx", "openvino")


@dataclass(frozen=True)
class Trial:
    """One int8 model measured against fp32 on the check images."""

    keep_fp32: tuple[str, ...]
    top1_agreement: float
    logit_error: float  # mean squared logit error / mean squared fp32 logit


@dataclass(frozen=True)
class Sensitivity:
    budget: float                    # the largest fraction of check images allowed to change class
    all_int8: Trial
    one_at_a_time: tuple[Trial, ...]  # each group alone kept in fp32, best first
    chosen: Trial
    within_budget: bool
    trials: int                      # int8 models built and measured

    @property
    def keep_fp32(self) -> tuple[str, ...]:
        return self.chosen.keep_fp32


def score(fp32_logits: np.ndarray, int8_logits: np.ndarray, keep_fp32: Sequence[str] = ()) -> Trial:
    agree = float(np.mean(fp32_logits.argmax(1) == int8_logits.argmax(1)))
    error = float(np.mean((int8_logits - fp32_logits) ** 2) / max(float(np.mean(fp32_logits ** 2)), 1e-12))
    return Trial(tuple(keep_fp32), agree, error)


def find_fp32_groups(int8_logits: Callable[[tuple[str, ...]], np.ndarray], fp32_logits: np.ndarray,
                     groups: Sequence[str], budget: float = 0.01) -> Sensitivity:
    """The groups to keep in fp32. ``int8_logits(keep_fp32)`` quantises the model with those
    groups in fp32 and returns its logits on the check images whose fp32 logits are
    ``fp32_logits``."""
    if not 0.0 <= budget < 1.0:
        raise ValueError(f"the accuracy budget is a fraction of images in [0, 1), got {budget}")
    seen: dict[tuple[str, ...], Trial] = {}

    def trial(keep: tuple[str, ...]) -> Trial:
        key = tuple(sorted(keep))
        if key not in seen:
            seen[key] = score(fp32_logits, int8_logits(keep), keep)
        return seen[key]

    def fits(t: Trial) -> bool:
        return 1.0 - t.top1_agreement <= budget + 1e-9

    base = trial(())
    singles = tuple(sorted((trial((g,)) for g in groups), key=lambda t: (t.logit_error, -t.top1_agreement)))
    if fits(base):
        return Sensitivity(budget, base, singles, base, True, len(seen))
    chosen, current = (), base
    for single in singles:
        if single.logit_error >= base.logit_error:
            break  # this group and the ones after it do not help on their own
        candidate = trial((*chosen, *single.keep_fp32))
        if candidate.logit_error < current.logit_error or candidate.top1_agreement > current.top1_agreement:
            chosen, current = candidate.keep_fp32, candidate
        if fits(current):
            break
    if fits(current):
        for group in list(chosen):  # drop any group the others make unnecessary
            smaller = trial(tuple(g for g in chosen if g != group))
            if fits(smaller):
                chosen, current = smaller.keep_fp32, smaller
    else:
        # out of reach: the closest agreement, with the fewest fp32 groups among equals
        current = max(seen.values(), key=lambda t: (t.top1_agreement, -len(t.keep_fp32), -t.logit_error))
    return Sensitivity(budget, base, singles, current, fits(current), len(seen))


def node_names(path: str | Path) -> list[str]:
    """The node names of an ONNX file or an OpenVINO IR file."""
    path = Path(path)
    if path.suffix == ".xml":
        return [op.get_friendly_name() for op in require_openvino().Core().read_model(str(path)).get_ordered_ops()]
    import onnx

    return [node.name for node in onnx.load(str(path)).graph.node]


def quantizer(runtime: str, fp32_path: str | Path, calibration: np.ndarray,
              options: QuantOptions) -> Callable[[str | Path, tuple[str, ...]], Callable[[np.ndarray], np.ndarray]]:
    """``build(int8_path, keep_fp32) -> runner``: quantise ``fp32_path`` with those groups in fp32."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")

    def build(path: str | Path, keep: tuple[str, ...]) -> Callable[[np.ndarray], np.ndarray]:
        if runtime == "onnx":
            quantize_onnx(fp32_path, path, calibration, options=options.with_fp32(keep))
            return OnnxRunner(path)
        quantize_openvino(fp32_path, path, calibration, options=options.with_fp32(keep))
        return OpenVinoRunner(path)

    return build


def quantize_within_budget(fp32_path: str | Path, int8_path: str | Path, calibration: np.ndarray,
                           check: np.ndarray, *, runtime: str = "onnx", options: QuantOptions | None = None,
                           budget: float = 0.01, groups: Sequence[str] | None = None) -> Sensitivity:
    """Quantise ``fp32_path`` (an ONNX file with a fixed image size) to ``int8_path`` with the
    fewest fp32 groups :func:`find_fp32_groups` finds for ``budget``, measured on ``check``
    (preprocessed images disjoint from ``calibration``). ``groups``: the candidates (default:
    every group the model has). Writes the chosen model even when no set of groups met the
    budget (then the one that came closest); the result says which."""
    options = options or QuantOptions()
    if len(check) == 0:
        raise ValueError("no check images; give images the calibration did not see")
    build = quantizer(runtime, fp32_path, calibration, options)
    fp32 = (OnnxRunner(fp32_path) if runtime == "onnx" else OpenVinoRunner(fp32_path))(check)
    candidates = tuple(groups) if groups is not None else groups_of(node_names(fp32_path))
    suffix = ".onnx" if runtime == "onnx" else ".xml"
    with tempfile.TemporaryDirectory() as tmp:
        def int8_logits(keep: tuple[str, ...]) -> np.ndarray:
            return build(Path(tmp) / f"int8-{'-'.join(keep) or 'all'}{suffix}", keep)(check)

        result = find_fp32_groups(int8_logits, fp32, candidates, budget)
    build(int8_path, result.keep_fp32)
    return result


def pt2e_within_budget(module: nn.Module, int8_path: str | Path, example: torch.Tensor, calibration: np.ndarray,
                       check: np.ndarray, *, budget: float = 0.01, groups: Sequence[str] | None = None) -> Sensitivity:
    """The ExecuTorch counterpart of :func:`quantize_within_budget`: ``module`` (prepared for
    export) quantised by PT2E with the fewest fp32 groups that meet ``budget`` on ``check``,
    lowered to the XNNPACK program ``int8_path``. The trials run PyTorch's converted int8
    graph, the arithmetic the program runs, without lowering each (seconds, not a minute)."""
    if len(check) == 0:
        raise ValueError("no check images; give images the calibration did not see")
    images = torch.from_numpy(np.ascontiguousarray(check, dtype=np.float32))
    with torch.no_grad():
        fp32 = module(images).numpy()

    def int8_logits(keep: tuple[str, ...]) -> np.ndarray:
        with torch.no_grad():
            return quantize_int8(module, example, calibration, keep)(images).numpy()

    names = [name for name, _ in module.named_modules()]
    candidates = tuple(groups) if groups is not None else groups_of(names, modules=True)
    result = find_fp32_groups(int8_logits, fp32, candidates, budget)
    export_executorch(module, int8_path, example, calibration=calibration, keep_fp32=result.keep_fp32)
    return result


__all__ = ["RUNTIMES", "Sensitivity", "Trial", "find_fp32_groups", "node_names", "pt2e_within_budget",
           "quantize_within_budget", "quantizer", "score"]
