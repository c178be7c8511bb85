"""ExecuTorch: a model lowered to the XNNPACK delegate as a ``.pte`` program, fp32 or int8
(PT2E with XNNPACK's quantiser), and a runner for it with the interface of the onnxruntime
and OpenVINO runners (``runner(images) -> logits``).

The path is ``torch.export`` -> ``to_edge_transform_and_lower`` (XnnpackPartitioner) ->
``to_executorch``. A program has a fixed image size and a batch dimension bounded by its
memory plan: XNNPACK's lowering plans at most 15 images whatever bound the export declares
(read back from the program as ``ExecuTorchRunner.capacity``), so a larger batch runs as
several calls of at most that many, in order. ``executorch`` (with ``torchao``) is an optional
dependency (``pip install effnet[executorch]``), imported when it is used.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import pt2e
from ..atomic import write_atomic
from .quant_options import group_pattern
from .runtime import RuntimeModel

# The batch bound the export declares; the program's own plan may hold fewer (see above).
MAX_BATCH = 64
CALIBRATION_BATCH = 8  # images per calibration forward (the ranges do not depend on it)


def require_executorch():  # type: ignore[no-untyped-def]
    """ExecuTorch's Python runtime, or a one-line error that says how to install it."""
    # torchao (imported with ExecuTorch's lowering) registers an Enum with torch's pytree, and
    # torch logs a deprecation note for it on every import: a note to torchao, not to our users.
    pytree_log = logging.getLogger("torch.utils._pytree")
    level = pytree_log.level
    pytree_log.setLevel(logging.ERROR)
    try:
        import executorch.runtime
        import torchao.quantization.pt2e  # noqa: F401 - imported here, under the quiet log
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("ExecuTorch is not installed; run `pip install effnet[executorch]` "
                          "(or `pip install executorch`) to export or run .pte programs") from error
    finally:
        pytree_log.setLevel(level)
    return executorch.runtime


def xnnpack_quantizer(keep_fp32: Sequence[str] = ()):  # type: ignore[no-untyped-def]
    """XNNPACK's int8 scheme: symmetric per-channel weights, per-tensor activations; the layer
    groups ``keep_fp32`` (``stem``, ``se``, ``stage3``, ``classifier``...) stay in fp32."""
    require_executorch()
    patterns = [group_pattern(group, modules=True) for group in keep_fp32]
    return pt2e.xnnpack_quantizer(per_channel=True, fp32_modules=patterns)[0]


def _export(module: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    # A batch of 2 for tracing: torch.export specialises on size-1 dimensions.
    example = example[:1].expand(2, *example.shape[1:]).contiguous()
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    return torch.export.export(module, (example,), dynamic_shapes=({0: batch},))


def quantize_int8(module: nn.Module, example: torch.Tensor, calibration: np.ndarray,
                  keep_fp32: Sequence[str] = ()) -> nn.Module:
    """``module`` quantised by PT2E (prepare, observe ``calibration``, convert) with XNNPACK's
    quantiser: a graph of quantise/dequantise pairs that the XNNPACK lowering turns into int8
    kernels; the groups ``keep_fp32`` stay fp32 (XNNPACK runs them in fp32)."""
    if len(calibration) == 0:
        raise ValueError("int8 calibration needs at least one image")
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    prepared = prepare_pt2e(_export(module, example).module(), xnnpack_quantizer(keep_fp32))
    with torch.no_grad():
        for start in range(0, len(calibration), CALIBRATION_BATCH):
            prepared(torch.from_numpy(np.ascontiguousarray(calibration[start:start + CALIBRATION_BATCH],
                                                           dtype=np.float32)))
    return convert_pt2e(prepared)


def export_executorch(module: nn.Module, path: str | Path, example: torch.Tensor, *,
                      calibration: np.ndarray | None = None, keep_fp32: Sequence[str] = ()) -> Path:
    """``module`` (eval mode, ready to export: BN folded and SAME pads fixed for ours) as an
    XNNPACK ``.pte`` at ``example``'s image size; int8 when ``calibration`` images are given,
    but for the groups ``keep_fp32``."""
    path = Path(path)
    if path.suffix != ".pte":
        raise ValueError(f"an ExecuTorch program ends in .pte; got {path.name}")
    require_executorch()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    module = module.eval()
    if calibration is not None:
        module = quantize_int8(module, example, calibration, keep_fp32)
    edge = to_edge_transform_and_lower(_export(module, example), partitioner=[XnnpackPartitioner()])
    return write_atomic(path, edge.to_executorch().buffer)


@contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """XNNPACK's first start prints cpuinfo's notes about ARM registers it cannot read
    (harmless on x86) straight to file descriptor 2; they are kept out of effnet's output (a
    program that fails to load still raises, with its message)."""
    try:
        saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except OSError:  # no file descriptors to juggle: let the notes through
        yield
        return
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


class ExecuTorchRunner:
    """``runner(images) -> logits`` for a ``.pte`` program, images as float32 NCHW numpy
    arrays (or torch tensors). A batch larger than the program's ``capacity`` runs as several
    calls; images of another size are a clear error (the program has one image size).
    ``threads`` sets XNNPACK's thread pool, which is shared by the whole process."""

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        runtime = require_executorch()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no ExecuTorch program at {path}; create one with "
                                    "`effnet export MODEL --format executorch -o MODEL.pte`")
        if threads:
            from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
            _unsafe_reset_threadpool(int(threads))
        try:
            with _quiet_native_stderr():  # XNNPACK starts cpuinfo when it loads the first program
                self.method = runtime.Runtime.get().load_program(path).load_method("forward")
        except (RuntimeError, ValueError) as error:
            raise ValueError(f"{path.name} is not an ExecuTorch program this runtime can load ({error})") from None
        self.path = path
        meta = self.method.metadata
        shape = tuple(meta.input_tensor_meta(0).sizes())
        self.capacity = int(shape[0])
        self.input_shape = (None, *shape[1:])  # any batch; fixed channels, height and width
        self.num_classes = int(meta.output_tensor_meta(0).sizes()[-1])
        self._lock = threading.Lock()  # one Method, one call at a time

    def __call__(self, images) -> np.ndarray:  # type: ignore[no-untyped-def]
        if hasattr(images, "detach"):
            images = images.detach().cpu().numpy()
        images = np.ascontiguousarray(images, dtype=np.float32)
        expected = self.input_shape[1:]
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"{self.path.name} expects images of shape (N, {', '.join(map(str, expected))}), "
                             f"got {images.shape}; export again with --resolution {images.shape[-1]} for this size")
        if len(images) == 0:
            raise ValueError(f"{self.path.name} got an empty batch; give at least one image")
        out = []
        with self._lock:
            for start in range(0, len(images), self.capacity):
                chunk = torch.from_numpy(images[start:start + self.capacity])
                out.append(self.method.execute((chunk,))[0].numpy())  # a new tensor per call
        return np.concatenate(out)


class ExecuTorchModel(RuntimeModel):
    """A ``.pte`` program in ExecuTorch, as a :class:`~effnet.deploy.runtime.RuntimeModel`."""

    def __init__(self, path: str | Path, source: nn.Module | None = None, *, threads: int | None = None) -> None:
        runner = ExecuTorchRunner(path, threads=threads)
        super().__init__(runner, source, runner.num_classes)


__all__ = ["MAX_BATCH", "ExecuTorchModel", "ExecuTorchRunner", "export_executorch", "quantize_int8",
           "require_executorch", "xnnpack_quantizer"]
