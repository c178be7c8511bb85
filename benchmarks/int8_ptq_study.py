"""The post-training int8 study both int8 benchmarks run (a module they import, not a script):
every calibration choice of each quantiser, then the best of them (picked on the check images)
with the fp32 groups :func:`effnet.deploy.sensitivity.quantize_within_budget` measures.

Three disjoint image sets: calibration (activation ranges), check (picking the calibration and
the fp32 groups) and the evaluation the caller does on its own held-out images, so the numbers
reported are not those the choices were made on.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from effnet.deploy.openvino import OpenVinoRunner
from effnet.deploy.quant_options import QuantOptions
from effnet.deploy.runtime import OnnxRunner
from effnet.deploy.sensitivity import quantize_within_budget, quantizer, score

CHOICES = {
    "onnx": {"minmax": QuantOptions("minmax"), "percentile": QuantOptions("percentile"),
             "entropy": QuantOptions("entropy")},
    "openvino": {"default (performance preset, fast bias correction)": QuantOptions(),
                 "mixed preset": QuantOptions(preset="mixed"),
                 "percentile": QuantOptions("percentile"),
                 "histogram": QuantOptions("histogram"),
                 "full bias correction": QuantOptions(bias_correction="full")},
}
SUFFIX = {"onnx": ".onnx", "openvino": ".xml"}


def ptq_study(fp32_path: Path, calibration: np.ndarray, check: np.ndarray,
              evaluate: Callable[[Callable[[np.ndarray], np.ndarray]], dict[str, float]], folder: Path, *,
              runtimes: tuple[str, ...] = ("onnx", "openvino"), budget: float = 0.02,
              log: Callable[[str], None] = print) -> list[dict[str, object]]:
    """One row per (runtime, choice): the options, the check-set score and ``evaluate(runner)``."""
    rows: list[dict[str, object]] = []
    for runtime in runtimes:
        fp32_check = (OnnxRunner(fp32_path) if runtime == "onnx" else OpenVinoRunner(fp32_path))(check)
        mine = []
        for i, (name, options) in enumerate(CHOICES[runtime].items()):
            start = time.perf_counter()
            runner = quantizer(runtime, fp32_path, calibration, options)(folder / f"{runtime}-{i}{SUFFIX[runtime]}", ())
            row = {"runtime": runtime, "choice": name, "options": dataclasses.asdict(options),
                   "check": dataclasses.asdict(score(fp32_check, runner(check))), **evaluate(runner),
                   "seconds": time.perf_counter() - start}
            log(f"{runtime} {name}: {row}")
            mine.append(row)
        best = max(mine, key=lambda r: (r["check"]["top1_agreement"], -r["check"]["logit_error"]))  # type: ignore[index]
        options = CHOICES[runtime][str(best["choice"])]
        start = time.perf_counter()
        path = folder / f"{runtime}-measured{SUFFIX[runtime]}"
        found = quantize_within_budget(fp32_path, path, calibration, check, runtime=runtime, options=options,
                                       budget=budget)
        runner = OnnxRunner(path) if runtime == "onnx" else OpenVinoRunner(path)
        kept = ", ".join(found.keep_fp32) or "none"
        row = {"runtime": runtime, "choice": f"{best['choice']} + measured fp32 groups ({kept})",
               "options": dataclasses.asdict(options.with_fp32(found.keep_fp32)),
               "check": dataclasses.asdict(found.chosen), **evaluate(runner),
               "sensitivity": dataclasses.asdict(found), "seconds": time.perf_counter() - start}
        log(f"{runtime} measured: {row}")
        rows += [*mine, row]
    return rows
