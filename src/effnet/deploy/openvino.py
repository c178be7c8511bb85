"""Run an exported model with OpenVINO: one place for its compile options, its IR export and
its int8 quantisation (NNCF).

``openvino`` (and ``nncf`` for int8) are optional dependencies (``pip install
effnet[openvino]``), imported when a runner is made, never when effnet is imported.

OpenVINO reads our ONNX files directly; the IR (``.xml`` + ``.bin``) written by
:func:`export_openvino` is the same graph after OpenVINO's own conversion, which loads
faster. ``precision="bf16"`` asks the CPU plugin for bfloat16 inference: it runs in bf16
only where the CPU has native bf16 (AVX512_BF16 or AMX); elsewhere OpenVINO keeps fp32, and
:attr:`OpenVinoRunner.precision` says which one actually ran.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

import numpy as np
from torch import nn

from .quant_options import QuantOptions
from .runtime import RuntimeModel

PRECISIONS = ("f32", "bf16")


def require_openvino():  # type: ignore[no-untyped-def]
    try:
        import openvino
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("OpenVINO is not installed; run `pip install effnet[openvino]` "
                          "(or `pip install openvino`) to run models with it") from error
    return openvino


def compile_options(threads: int | None = None, precision: str = "f32") -> dict[str, object]:
    """CPU plugin options: one stream using ``threads`` cores (default: all) for each
    request (the LATENCY hint: a batch runs as one request, like onnxruntime's session), at
    ``precision`` where the CPU supports it."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown OpenVINO precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    return {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": int(threads or os.cpu_count() or 1),
            "INFERENCE_PRECISION_HINT": precision}


class OpenVinoRunner:
    """``runner(images) -> logits`` for an ONNX or OpenVINO IR file on the CPU, images as
    float32 NCHW numpy arrays (or torch tensors) prepared as the model's preprocessing says."""

    def __init__(self, path: str | Path, *, threads: int | None = None, precision: str = "f32") -> None:
        ov = require_openvino()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no model at {path}; create one with `effnet export MODEL --format openvino` "
                                    "(or --format onnx)")
        core = ov.Core()
        self.path = path
        self.compiled = core.compile_model(core.read_model(str(path)), "CPU", compile_options(threads, precision))
        self.request = self.compiled.create_infer_request()
        # What ran, not what was asked: bf16 falls back to f32 on CPUs without native bf16.
        ran = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = ran.to_string() if hasattr(ran, "to_string") else str(ran)
        shape = self.compiled.input(0).get_partial_shape()
        self.input_shape = tuple(d.get_length() if d.is_static else None for d in shape)
        output = self.compiled.output(0).get_partial_shape()
        self.num_classes = output[-1].get_length() if output[-1].is_static else None

    def __call__(self, images) -> np.ndarray:  # type: ignore[no-untyped-def]
        if hasattr(images, "detach"):
            images = images.detach().cpu().numpy()
        images = np.ascontiguousarray(images, dtype=np.float32)
        expected, got = self.input_shape[1:], images.shape[1:]
        if len(got) != len(expected) or any(e is not None and e != g for e, g in zip(expected, got)):
            raise ValueError(f"{self.path.name} expects images of shape (N, {', '.join(map(str, expected))}), "
                             f"got {images.shape}; export with --resolution {got[-1]} for this size")
        # share_inputs: OpenVINO reads the array in place instead of copying it.
        result = self.request.infer({0: images}, share_inputs=True)
        return np.array(result[self.compiled.output(0)])


class OpenVinoModel(RuntimeModel):
    """An ONNX or IR file in OpenVINO, as a :class:`RuntimeModel` (the source model's
    preprocessing and class names kept)."""

    def __init__(self, path: str | Path, source: nn.Module | None = None, *, threads: int | None = None,
                 precision: str = "f32") -> None:
        runner = OpenVinoRunner(path, threads=threads, precision=precision)
        super().__init__(runner, source, runner.num_classes)


def export_openvino(onnx_path: str | Path, path: str | Path) -> Path:
    """Convert an ONNX export to OpenVINO IR (``path`` ends in .xml; the weights go beside it
    in .bin), weights kept in fp32 (no fp16 compression: the CPU computes in fp32 anyway)."""
    ov = require_openvino()
    path = Path(path)
    if path.suffix != ".xml":
        raise ValueError(f"an OpenVINO IR file ends in .xml (its weights go beside it in .bin); got {path.name}")
    ov.save_model(ov.convert_model(str(onnx_path)), str(path), compress_to_fp16=False)
    return path


def nncf_arguments(nncf, model, options: QuantOptions) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """``nncf.quantize`` keyword arguments for ``options`` on the OpenVINO ``model``."""
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    advanced: dict[str, object] = {"disable_bias_correction": options.bias_correction == "none"}
    calibration = options.calibration_for("openvino")
    if calibration is not None:
        estimators = {"minmax": RangeEstimatorParametersSet.MINMAX, "mean_minmax": RangeEstimatorParametersSet.MEAN_MINMAX,
                      "percentile": RangeEstimatorParametersSet.MEAN_QUANTILE,
                      "histogram": RangeEstimatorParametersSet.HISTOGRAM}
        advanced["activations_range_estimator_params"] = estimators[calibration]
    excluded = options.excluded_nodes(op.get_friendly_name() for op in model.get_ordered_ops())
    return {"preset": nncf.QuantizationPreset(options.preset), "fast_bias_correction": options.bias_correction != "full",
            "ignored_scope": nncf.IgnoredScope(names=excluded) if excluded else None,
            "advanced_parameters": AdvancedQuantizationParameters(**advanced)}  # type: ignore[arg-type]


def quantize_openvino(model_path: str | Path, path: str | Path, images: np.ndarray, *, batch_size: int = 1,
                      options: QuantOptions | None = None) -> Path:
    """int8 post-training quantisation with NNCF (OpenVINO's own quantiser): activation
    statistics from ``images`` (N, C, H, W float32, preprocessed), int8 weights per channel,
    written as OpenVINO IR. NNCF inserts FakeQuantize ops that the CPU plugin runs as int8.

    ``options`` (:class:`QuantOptions`): the range estimator for activations (``calibration``),
    NNCF's ``preset``, its bias correction, and the groups kept in fp32 (NNCF's ``ignored_scope``).
    """
    ov = require_openvino()
    try:
        import nncf
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("OpenVINO int8 needs NNCF; run `pip install effnet[openvino]` (or `pip install nncf`)") from error
    path = Path(path)
    if path.suffix != ".xml":
        raise ValueError(f"an OpenVINO IR file ends in .xml; got {path.name}")
    images = np.ascontiguousarray(images, dtype=np.float32)
    batches = [images[i:i + batch_size] for i in range(0, len(images), batch_size)]
    # An ONNX file goes through OpenVINO's converter, as for the IR: it folds the bias
    # arithmetic into constants and fuses Sigmoid * x into Swish. Read as it is, NNCF finds no
    # bias to correct (bias correction is a no-op) and quantises SiLU's sigmoid and product
    # apart. Measured (benchmarks/results/int8_ptq_*): full bias correction then helps most
    # (Lite0 85% agreement, fmnist_lab_lite 98.2%), but Lite0's default preset agrees less
    # than the unconverted graph did in a run not kept as a result (78.8% against 87.5%).
    onnx_file = Path(model_path).suffix == ".onnx"
    model = ov.convert_model(str(model_path)) if onnx_file else ov.Core().read_model(str(model_path))
    arguments = nncf_arguments(nncf, model, options or QuantOptions())
    # NNCF draws its progress bars on stdout; they go to stderr so that stdout stays the
    # caller's (`effnet export --json` prints JSON there).
    # Its log (a line per node an ignored scope leaves out) goes to stdout too: warnings only.
    logger, level = logging.getLogger("nncf"), logging.getLogger("nncf").level
    logger.setLevel(logging.WARNING)
    with contextlib.redirect_stdout(sys.stderr):
        try:
            quantized = nncf.quantize(model, nncf.Dataset(batches), subset_size=len(images), **arguments)
        finally:
            logger.setLevel(level)
    ov.save_model(quantized, str(path), compress_to_fp16=False)
    return path


__all__ = ["PRECISIONS", "OpenVinoModel", "OpenVinoRunner", "compile_options", "export_openvino", "quantize_openvino",
           "require_openvino"]
