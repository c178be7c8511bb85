"""Run an exported ONNX model with onnxruntime: one place for session options and threads.

``onnxruntime`` is an optional dependency (``pip install effnet[onnx]``); it is imported
when a runner is made, never when effnet is imported.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn


def require_onnxruntime():  # type: ignore[no-untyped-def]
    try:
        import onnxruntime
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError("onnxruntime is not installed; run `pip install effnet[onnx]` "
                          "(or `pip install onnxruntime`) to run ONNX models") from error
    return onnxruntime


def session_options(threads: int | None = None, *, optimize: bool = True, spin: bool = True):  # type: ignore[no-untyped-def]
    """Options for CPU inference: ``threads`` intra-op threads (default: all cores), one
    inter-op thread (the graph is a chain, nothing runs in parallel between ops), full
    graph optimisation (constant folding, conv + activation fusion, layout transforms).
    ``spin=False`` stops idle threads from busy-waiting for the next op: a server needs
    those cycles for its event loop and for decoding images between batches."""
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(threads or os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if optimize
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    return options


# How a batch of several images runs on the CPU (measured, docs/deploy.md): split into
# micro-batches of MICRO_BATCH images, run by one session per core (one thread each) side by
# side. B0's activations for 2 images stay in a core's L2 cache; a batch of 32 run as one does
# not, and every elementwise pass (SiLU, SE's multiply, the layout reorders) then goes to
# memory: on a 2-core EPYC, 60.0 and 80.7 images/s planned against 52.4 and 57.4 as one
# batch in two recorded runs (benchmarks/results/b0_cpu). A batch smaller
# than the number of streams runs as one, on every thread (lowest latency).
MICRO_BATCH = 2


class OnnxRunner:
    """``runner(images) -> logits`` for an ONNX file, images as float32 NCHW numpy arrays
    (or torch tensors) prepared as the model's preprocessing says.

    ``streams`` sessions (default: one per thread on the CPU; 1 turns the plan off) each
    take every ``streams``-th micro-batch of ``micro_batch`` images. onnxruntime releases
    the GIL while it runs, so the streams compute in parallel."""

    def __init__(self, path: str | Path, *, threads: int | None = None, providers: list[str] | None = None,
                 spin: bool = True, streams: int | None = None, micro_batch: int = MICRO_BATCH) -> None:
        ort = require_onnxruntime()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no ONNX model at {path}; create one with `effnet export MODEL --format onnx`")
        if micro_batch < 1 or (streams is not None and streams < 1):
            raise ValueError(f"streams and micro_batch must be at least 1, got {streams} and {micro_batch}")
        available = ort.get_available_providers()
        providers = providers or [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
        threads = int(threads or os.cpu_count() or 1)
        self.path = path
        self.session = ort.InferenceSession(str(path), sess_options=session_options(threads, spin=spin),
                                            providers=providers)
        on_cpu = self.session.get_providers()[0] == "CPUExecutionProvider"
        self.streams = (streams or threads) if on_cpu else 1
        self.micro_batch = micro_batch
        self._stream_sessions, self._pool = [], None
        if self.streams > 1:
            per_stream = session_options(max(1, threads // self.streams), spin=spin)
            self._stream_sessions = [ort.InferenceSession(str(path), sess_options=per_stream, providers=providers)
                                     for _ in range(self.streams)]
            self._pool = ThreadPoolExecutor(self.streams, thread_name_prefix="effnet-ort")
        inputs = self.session.get_inputs()
        self.input_name = inputs[0].name
        self.input_shape = tuple(inputs[0].shape)  # ints for fixed sizes, names for dynamic axes

    def plan(self, n: int) -> int:
        """The micro-batch size for a batch of ``n`` (at least ``streams`` of them): at most
        ``micro_batch``, and small enough that every stream has a micro-batch."""
        return max(1, min(self.micro_batch, n // self.streams))

    def __call__(self, images) -> np.ndarray:  # type: ignore[no-untyped-def]
        if hasattr(images, "detach"):
            images = images.detach().cpu().numpy()
        images = np.ascontiguousarray(images, dtype=np.float32)
        expected = self.input_shape[1:]
        got = images.shape[1:]
        if len(got) != len(expected) or any(isinstance(e, int) and e != g for e, g in zip(expected, got)):
            raise ValueError(f"{self.path.name} expects images of shape (N, {', '.join(map(str, expected))}), "
                             f"got {images.shape}; export with --dynamic or --resolution {got[-1]} for this size")
        if self._pool is None or len(images) < self.streams:
            return self.session.run(None, {self.input_name: images})[0]
        # Every stream gets work: a batch of 2 on 2 streams runs as 1 + 1 side by side (measured:
        # as one micro-batch of 2 on one core it took 45 ms for Lite0, against 22 ms split).
        size = self.plan(len(images))
        chunks = [images[i:i + size] for i in range(0, len(images), size)]

        def stream(k: int) -> list[np.ndarray]:
            session = self._stream_sessions[k]
            return [session.run(None, {self.input_name: chunk})[0] for chunk in chunks[k::self.streams]]

        done = list(self._pool.map(stream, range(self.streams)))
        ordered = [done[i % self.streams][i // self.streams] for i in range(len(chunks))]
        return np.concatenate(ordered)


class RuntimeModel(nn.Module):
    """A model run by an inference runtime (onnxruntime, OpenVINO) that looks like an effnet
    classifier to callers such as ``effnet.predict``: ``model(x)`` takes and returns torch
    tensors (CPU), and it carries the source model's ``preprocessing`` and ``class_names`` so
    the same transform and labels apply. ``runner``: images (numpy NCHW) -> logits."""

    def __init__(self, runner, source: nn.Module | None = None, num_classes: int | None = None) -> None:  # type: ignore[no-untyped-def]
        super().__init__()
        self.runner = runner
        self.preprocessing = getattr(source, "preprocessing", None)
        self.class_names = getattr(source, "class_names", None)
        self.spec = getattr(source, "spec", None)
        self.num_classes = num_classes or getattr(source, "num_classes", 0)
        # Empty and never used: callers read the input dtype from the parameters.
        self._dtype_marker = nn.Parameter(torch.empty(0), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.runner(x.float()))


class OnnxModel(RuntimeModel):
    """An ONNX file in onnxruntime, as a :class:`RuntimeModel`."""

    def __init__(self, path: str | Path, source: nn.Module | None = None, *, threads: int | None = None,
                 spin: bool = True) -> None:
        runner = OnnxRunner(path, threads=threads, spin=spin)
        classes = runner.session.get_outputs()[0].shape[-1]
        super().__init__(runner, source, classes if isinstance(classes, int) else None)


__all__ = ["OnnxModel", "OnnxRunner", "RuntimeModel", "session_options"]
