"""int8 post-training static quantisation of an exported ONNX model with onnxruntime.

Static quantisation fixes every activation's scale from calibration images run through the
fp32 model, so it needs a graph whose shapes are fixed: export with a ``resolution`` and
without ``dynamic`` (SAME pads become constants; shape arithmetic in the graph would leave
the pads unquantisable and break the QDQ pattern around each conv).
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..device import cpu_info
from .quant_options import QuantOptions

METHODS = ("minmax", "entropy", "percentile")
WEIGHT_TYPES = ("int8", "uint8")


def cpu_has_vnni() -> bool:
    """Whether this x86 CPU has VNNI (AVX512_VNNI or AVX_VNNI): int8 dot products without the
    16-bit intermediate sums that saturate (False where /proc/cpuinfo cannot be read)."""
    flags = cpu_info().flags
    return "avx512_vnni" in flags or "avx_vnni" in flags


def _quantization():  # type: ignore[no-untyped-def]
    try:
        from onnxruntime import quantization
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("int8 quantisation needs onnxruntime; run `pip install effnet[onnx]`") from error
    return quantization


def _batches(images: np.ndarray | Iterable[np.ndarray], batch_size: int) -> Iterator[np.ndarray]:
    if isinstance(images, np.ndarray):
        for start in range(0, len(images), batch_size):
            yield images[start:start + batch_size]
    else:
        yield from images


def make_reader(input_name: str, images: np.ndarray | Iterable[np.ndarray], batch_size: int = 8):  # type: ignore[no-untyped-def]
    """An onnxruntime ``CalibrationDataReader`` over preprocessed images (N, C, H, W float32,
    or an iterable of such batches)."""
    quantization = _quantization()

    class ImageReader(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self._iter = _batches(images, batch_size)

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self._iter, None)
            return None if batch is None else {input_name: np.ascontiguousarray(batch, dtype=np.float32)}

    return ImageReader()


def depthwise_weights(model) -> list[str]:  # type: ignore[no-untyped-def]
    """The weight initializers of a graph's depthwise convs (one input channel per group)."""
    initializers = {t.name: list(t.dims) for t in model.graph.initializer}
    names = []
    for node in model.graph.node:
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        if node.op_type == "Conv" and group > 1 and len(node.input) > 1:
            dims = initializers.get(node.input[1])
            if dims is not None and len(dims) == 4 and dims[1] == 1:
                names.append(node.input[1])
    return names


def entropy_ranges(quantization, model_path: Path, reader) -> dict[str, list[dict[str, object]]]:  # type: ignore[no-untyped-def]
    """Every activation's range by entropy calibration (TensorRT's: the clipping threshold whose
    256-level histogram is closest in KL divergence to the 1024-bin one), as onnxruntime
    ``TensorQuantOverrides``. ``quantize_static`` cannot pass the bin counts on: with its
    defaults (128 bins for 128 quantised bins) the only threshold entropy can pick is the
    maximum, so its "entropy" is minmax (measured: identical scales)."""
    with tempfile.TemporaryDirectory() as tmp:
        calibrator = quantization.calibrate.create_calibrator(
            str(model_path), augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=quantization.CalibrationMethod.Entropy,
            extra_options={"num_bins": 1024, "num_quantized_bins": 256})
        calibrator.collect_data(reader)
        ranges = calibrator.compute_data()
    return {name: [{"rmin": np.float32(data.range_value[0]), "rmax": np.float32(data.range_value[1])}]
            for name, data in ranges.data.items()}


@dataclass(frozen=True)
class QuantizeResult:
    path: Path
    calibration_images: int
    method: str
    weight_type: str = "int8"
    fp32_nodes: tuple[str, ...] = ()  # nodes left unquantised (QuantOptions.keep_fp32)


def quantize_onnx(fp32_path: str | Path, int8_path: str | Path, calibration: np.ndarray | Iterable[np.ndarray], *,
                  method: str = "minmax", per_channel: bool = True, batch_size: int = 8,
                  weight_type: str | None = None, options: QuantOptions | None = None) -> QuantizeResult:
    """Write an 8-bit (QDQ: weights per output channel, uint8 activations) copy of a
    static-size fp32 ONNX model, its activation ranges calibrated on ``calibration``.

    ``weight_type`` is ``"int8"`` or ``"uint8"``; by default int8 on CPUs with VNNI and uint8
    without. Without VNNI onnxruntime's uint8 x int8 kernels add pairs of products in 16 bits
    (VPMADDUBSW), which saturates (onnxruntime's quantization docs); its uint8 x uint8 kernels
    do not. Measured on an AVX2-only EPYC, Lite0 at 160 px on 24 held-out photos: int8/fp32
    top-1 agreement 58% with int8 weights, 67% with int8 and ``reduce_range``, 88% with
    uint8 weights (max logit error 9.8, 3.1, 1.8).

    ``minmax`` keeps only per-tensor minima and maxima; ``entropy`` and ``percentile`` keep
    every activation of every calibration image in memory (gigabytes for 64 images at
    224 px). onnxruntime's ``CalibMaxIntermediateOutputs`` option is not used: in 1.32 it
    drops the collected batches instead of reducing them.

    ``options`` (:class:`QuantOptions`): its ``calibration``, when set, replaces ``method``; its
    ``keep_fp32`` groups go to onnxruntime's ``nodes_to_exclude`` (no QDQ pair around them).
    """
    quantization = _quantization()
    import onnx

    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    options = options or QuantOptions()
    method = options.calibration_for("onnx") or method
    if method not in METHODS:
        raise ValueError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
    weights = weight_type or ("int8" if cpu_has_vnni() else "uint8")
    if weights not in WEIGHT_TYPES:
        raise ValueError(f"unknown weight type {weights!r}; choose one of {', '.join(WEIGHT_TYPES)}")
    model = onnx.load(str(fp32_path))
    graph_input = model.graph.input[0]
    dims = [d.dim_value or d.dim_param for d in graph_input.type.tensor_type.shape.dim]
    if any(isinstance(d, str) and d for d in dims[1:]):
        raise ValueError(f"{fp32_path.name} has a dynamic image size {dims}; static quantisation needs fixed "
                         "pads: export it with --resolution N and without --dynamic")
    n = len(calibration) if isinstance(calibration, np.ndarray) else -1
    if n == 0:
        raise ValueError("no calibration images; give a few dozen images like those the model will see")
    with tempfile.TemporaryDirectory() as tmp:
        # Shape inference and graph clean-up first, as onnxruntime recommends: the quantiser
        # needs every tensor's shape to place QDQ pairs.
        prepared = Path(tmp) / "prepared.onnx"
        quantization.shape_inference.quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        prepared_model = onnx.load(str(prepared))
        excluded = options.excluded_nodes(node.name for node in prepared_model.graph.node)
        overrides = {}
        if weights == "uint8":
            # The saturation is in the matrix-product kernels (1x1 and regular convs); for
            # depthwise convs onnxruntime has fast kernels only with int8 weights (uint8 ones
            # took 24x as long on Lite0, measured), and they do not saturate: int8 there.
            overrides = {name: [{"quant_type": quantization.QuantType.QInt8, "axis": 0}]
                         for name in depthwise_weights(prepared_model)}
        if method == "entropy":
            calibration = list(_batches(calibration, batch_size))  # read twice: entropy ranges, then the rest
            overrides.update(entropy_ranges(quantization, prepared, make_reader(graph_input.name, calibration)))
        extra: dict[str, object] = {"CalibPercentile": options.percentile}
        if overrides:
            extra["TensorQuantOverrides"] = overrides
        # Percentile and entropy calibration print progress on stdout; stdout stays the
        # caller's (`effnet export --json` prints JSON there).
        with contextlib.redirect_stdout(sys.stderr):
            quantization.quantize_static(
                str(prepared), str(int8_path), make_reader(graph_input.name, calibration, batch_size),
                quant_format=quantization.QuantFormat.QDQ, per_channel=per_channel,
                activation_type=quantization.QuantType.QUInt8,
                weight_type={"int8": quantization.QuantType.QInt8, "uint8": quantization.QuantType.QUInt8}[weights],
                calibrate_method={"minmax": quantization.CalibrationMethod.MinMax,
                                  "entropy": quantization.CalibrationMethod.MinMax,  # ranges overridden
                                  "percentile": quantization.CalibrationMethod.Percentile}[method],
                nodes_to_exclude=excluded, extra_options=extra,
            )
    return QuantizeResult(int8_path, n, method, weights, tuple(excluded))


@dataclass(frozen=True)
class Agreement:
    """How an int8 model's answers compare with the fp32 model's on the same images."""

    images: int
    top1_agreement: float       # fraction of images whose top-1 class is the same
    top5_overlap: float         # mean fraction of fp32's top-5 found in int8's top-5
    max_abs_logit_diff: float
    confident_images: int       # images fp32 gives more than 50% to one class
    top1_agreement_confident: float  # agreement on those: near-ties flip under any rounding


def agreement(fp32_logits: np.ndarray, int8_logits: np.ndarray) -> Agreement:
    same = fp32_logits.argmax(1) == int8_logits.argmax(1)
    a, b = np.argsort(-fp32_logits, 1)[:, :5], np.argsort(-int8_logits, 1)[:, :5]
    top5 = float(np.mean([len(set(x) & set(y)) / a.shape[1] for x, y in zip(a, b)]))
    shifted = np.exp(fp32_logits - fp32_logits.max(1, keepdims=True))
    confident = (shifted.max(1) / shifted.sum(1)) > 0.5
    return Agreement(len(fp32_logits), float(same.mean()), top5, float(np.abs(fp32_logits - int8_logits).max()),
                     int(confident.sum()), float(same[confident].mean()) if confident.any() else float("nan"))
