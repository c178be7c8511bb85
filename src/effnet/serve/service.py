"""What a server holds: the model in its runtime, its preprocessing, the batcher, the
metrics and the readiness flag. Independent of the web framework (``app.py``) and of the
backend (uvicorn here, Ray Serve replicas), so both serve the same thing."""

from __future__ import annotations

import asyncio
import functools
import gc
import io
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..cam import class_activation_map, overlay
from ..data.images import decode_image, limit_aspect
from ..data.transforms import input_size, preprocessing_for, transforms_for
from .batcher import Batcher
from .metrics import Metrics
from .runner import BatchRunner, yield_to_requests
from .protocol import ProtocolError


SWITCH_INTERVAL_S = 0.001


@dataclass(frozen=True)
class ServeSettings:
    """The knobs of ``effnet serve`` (its options have the same names)."""

    max_batch: int = 8
    max_delay_ms: float = 5.0
    max_queue: int = 64
    timeout_s: float = 10.0
    max_body_mb: float = 8.0
    # Decoded pixels per image: 40 megapixels is ~120 MB of RGB, past any photo a classifier
    # needs (JPEGs above it are decoded at 1/2..1/8 scale instead, see data.images).
    max_pixels: int = 40_000_000
    runtime: str = "auto"
    device: str | None = None
    threads: int = 0                # runtime threads (0: every core)

    def __post_init__(self) -> None:
        for name in ("max_batch", "max_queue"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("timeout_s", "max_body_mb"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_delay_ms < 0:
            raise ValueError(f"max_delay_ms must be at least 0, got {self.max_delay_ms}")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)


class Service:
    """One model, served. ``await start()`` warms it up and makes it ready."""

    def __init__(self, model: nn.Module, settings: ServeSettings | None = None, *, name: str | None = None,
                 weights: str | None = None, cache: bool = True,
                 remote: Callable[[torch.Tensor], torch.Tensor] | None = None, remote_slots: int = 1) -> None:
        """``remote`` (Ray Serve): batches go to it instead of a runtime here, up to
        ``remote_slots`` at once; the model here only gives metadata, preprocessing and CAMs."""
        self.settings = settings = settings or ServeSettings()
        if not getattr(model, "num_classes", 0):
            raise ValueError("this model has no classifier (num_classes is 0); serve a model with classes")
        self.model = model.eval()
        spec = getattr(model, "spec", None)
        self.name = name or (spec.name if spec is not None else type(model).__name__.lower())
        self.weights = weights
        self.remote = remote
        self.threads = settings.threads or os.cpu_count() or 1
        # One inference at a time (the runtime already uses every core), on a thread below the
        # event loop's priority; decoding beside it on a few threads (Pillow releases the GIL
        # while it decodes and resizes).
        slots = remote_slots if remote is not None else 1
        self._inference = ThreadPoolExecutor(slots, thread_name_prefix="effnet-infer", initializer=yield_to_requests)
        self._decode = ThreadPoolExecutor(max(2, self.threads), thread_name_prefix="effnet-decode")
        # Built on the inference thread, so the runtime's own threads inherit its priority.
        self.runner = None if remote is not None else self._inference.submit(
            BatchRunner, model, runtime=settings.runtime, device=settings.device, threads=settings.threads,
            cache=cache, batch=settings.max_batch).result()
        self.runtime = "remote" if self.runner is None else self.runner.runtime
        self.transform = transforms_for(model)
        self.preprocessing = preprocessing_for(model)
        self.input_size = input_size(model)
        self.in_chans = spec.in_chans if spec is not None else 3
        self.num_classes = int(model.num_classes)
        self.class_names = list(getattr(model, "class_names", None) or []) or None
        self.metrics = Metrics()
        self.batcher = Batcher(self._run_batch, self._inference, max_batch=settings.max_batch,
                               max_delay_s=settings.max_delay_ms / 1000, max_queue=settings.max_queue,
                               max_in_flight=slots, observe=self._observe)
        self.ready = False
        self.draining = False
        self._watch: asyncio.Task[None] | None = None
        self.replica = ""               # set by a backend with several copies (a response header)

    # -- life ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the batcher and run one warm-up batch; then the service is ready."""
        if self.ready:
            return
        self.batcher.start()
        self._watch = asyncio.get_running_loop().create_task(self._watch_loop())
        warm = torch.zeros(self.settings.max_batch, self.in_chans, self.input_size, self.input_size)
        await asyncio.get_running_loop().run_in_executor(self._inference, self._run_batch, warm)
        # Everything loaded so far (torch, the runtime, the app: ~400,000 objects) leaves the
        # collector's view: a full collection over it stopped the event loop for ~0.3-0.5 s
        # (measured: every 429 of a 2x overload waited behind one), a frozen heap takes microseconds.
        gc.collect()
        gc.freeze()
        # The decoders and the batch thread run Python too; at the default 5 ms GIL switch
        # interval the event loop waited up to 15 ms for it under overload, in 1 ms slices it hands over sooner.
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.ready = not self.draining
        self.metrics.ready.set(1 if self.ready else 0)

    def begin_drain(self) -> None:
        """Stop admitting requests (readiness false, new ones get 503); accepted ones go on."""
        self.draining = True
        self.batcher.draining = True
        self.ready = False
        self.metrics.ready.set(0)

    async def drain(self, timeout_s: float | None = None) -> bool:
        self.begin_drain()
        return await self.batcher.wait_idle(timeout_s)

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
        await self.batcher.stop()
        self._inference.shutdown(wait=False, cancel_futures=True)
        self._decode.shutdown(wait=False, cancel_futures=True)

    async def check_health(self) -> None:
        """Raises unless the model answers one image (Ray Serve's health check), on the
        inference thread, between batches."""
        if self.runner is not None:
            await asyncio.get_running_loop().run_in_executor(self._inference, self.runner.check)

    async def _watch_loop(self, period_s: float = 0.05) -> None:
        """How late the event loop wakes from a short sleep: time every request waits before
        the app sees it (accepting, parsing, answering 429s) when the loop is busy."""
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(period_s)
            self.metrics.loop_lag_seconds.observe(max(0.0, loop.time() - start - period_s))

    # -- work ------------------------------------------------------------------------------
    def _run_batch(self, images: torch.Tensor) -> torch.Tensor:
        return self.remote(images) if self.runner is None else self.runner(images)  # type: ignore[misc]

    def _observe(self, name: str, value: object) -> None:
        self.metrics.observe(name, value)
        self.metrics.queue_depth.set(self.batcher.depth)

    def _prepare(self, data: bytes, name: str) -> torch.Tensor:
        image = decode_image(data, name=name, max_pixels=self.settings.max_pixels)
        return self.transform(limit_aspect(image))

    def deadline(self, started: float) -> float:
        """The loop-time deadline of a request that arrived at ``started`` (``loop.time()``)."""
        return started + self.settings.timeout_s

    async def logits(self, *, images: list[bytes] | None = None, tensor: np.ndarray | None = None,
                     names: list[str] | None = None, deadline: float) -> np.ndarray:
        """Logits (N x classes) for encoded images (decoded, resized and normalised here) or
        for a tensor already preprocessed. Bad input raises ImageError/ProtocolError before it
        joins a batch; a full queue raises QueueFull, a missed deadline DeadlineExceeded."""
        count = len(images) if images is not None else int(tensor.shape[0])  # type: ignore[union-attr]
        if tensor is not None:
            self._check_tensor(tensor)
        loop = asyncio.get_running_loop()
        with self.batcher.admission(count) as ticket:
            self.metrics.queue_depth.set(self.batcher.depth)
            if images is not None:
                start = time.perf_counter()
                labels = names or [f"image {i}" for i in range(count)]
                prepared = await asyncio.gather(*(loop.run_in_executor(self._decode, self._prepare, data, label)
                                                  for data, label in zip(images, labels)))
                self.metrics.preprocess_seconds.observe(time.perf_counter() - start)
            else:
                prepared = list(torch.from_numpy(np.ascontiguousarray(tensor, dtype=np.float32)))
            rows = await asyncio.gather(*(self.batcher.submit(ticket, x, deadline) for x in prepared))
        self.metrics.queue_depth.set(self.batcher.depth)
        return torch.stack(rows).numpy()

    def _check_tensor(self, tensor: np.ndarray) -> None:
        expected = (self.in_chans, self.input_size, self.input_size)
        if tuple(tensor.shape[1:]) != expected:
            raise ProtocolError(f"input must have shape [N, {', '.join(map(str, expected))}] (the model's "
                                f"preprocessing, see GET /v2/models/{self.name}), got {list(tensor.shape)}")

    def top_k(self, logits: np.ndarray, k: int) -> list[dict[str, object]]:
        """The k best classes of one logits row: index, label and softmax score, as
        ``effnet predict`` reports them."""
        probabilities = torch.from_numpy(logits).float().softmax(dim=0)
        scores, indices = probabilities.topk(min(k, self.num_classes))
        return [{"index": int(i), "label": self.label(int(i)), "score": float(s)} for s, i in zip(scores, indices)]

    def label(self, index: int) -> str:
        return self.class_names[index] if self.class_names else f"class {index}"

    async def cam_png(self, data: bytes, class_index: int | None = None, *, deadline: float) -> bytes:
        """The class activation map over the crop the model saw, as PNG bytes. It takes a place
        in the batcher's bounded queue before decoding (QueueFull past it, DeadlineExceeded
        past ``deadline``) and runs on the inference thread in its turn: it runs the PyTorch
        model, and should neither race the batches nor hold a decoded image unbounded."""
        if class_index is not None and not 0 <= class_index < self.num_classes:
            raise ValueError(f"class index {class_index} is out of range: this model has classes "
                             f"0..{self.num_classes - 1}")
        loop = asyncio.get_running_loop()
        decode = functools.partial(decode_image, data, name="upload", max_pixels=self.settings.max_pixels)
        with self.batcher.admission(1) as ticket:
            # The decoded image goes straight into the job, no local here: only the queue holds it.
            return await self.batcher.call(ticket, functools.partial(  # type: ignore[return-value]
                self._cam, await loop.run_in_executor(self._decode, decode), class_index), deadline)

    def _cam(self, image, class_index: int | None) -> bytes:  # type: ignore[no-untyped-def]
        cam = class_activation_map(image, self.model, class_index, device="cpu")
        buffer = io.BytesIO()
        overlay(cam.image, cam.heatmap).save(buffer, format="PNG")
        return buffer.getvalue()

    def metadata(self) -> dict[str, object]:
        """KServe V2 model metadata, plus how to prepare inputs and what the classes are."""
        c, s = self.in_chans, self.input_size
        return {
            "name": self.name, "versions": ["1"], "platform": f"effnet-{self.runtime}",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, c, s, s]},
                       {"name": "image", "datatype": "BYTES", "shape": [-1]}],
            "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, self.num_classes]},
                        {"name": "probabilities", "datatype": "FP32", "shape": [-1, self.num_classes]}],
            "parameters": {"preprocessing": asdict(self.preprocessing), "classes": self.class_names,
                           "num_classes": self.num_classes, "weights": self.weights,
                           "max_batch": self.settings.max_batch},
        }
