"""What a server holds: one model behind KServe's seams, preprocess (body -> rows), predict
(rows -> logits through the batcher and the inference engine), postprocess (logits -> top k
or a V2 response) and explain (a class activation map); the metrics, the readiness flag and
the drain. Independent of the web framework (``app.py``) and of the backend (uvicorn here,
Ray Serve replicas), so both serve the same thing."""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from collections.abc import Callable
from dataclasses import asdict

import torch
from torch import nn

from .batcher import Batcher
from .engine import InferenceEngine
from .explain import Explain
from .metrics import Metrics
from .postprocess import Postprocess
from .predict import Predict
from .preprocess import Preprocess
from .settings import ServeSettings

SWITCH_INTERVAL_S = 0.001


class Service:
    """One model, served. ``await start()`` warms it up and makes it ready."""

    def __init__(self, model: nn.Module, settings: ServeSettings | None = None, *, name: str | None = None,
                 weights: str | None = None, cache: bool = True,
                 remote: Callable[[torch.Tensor], torch.Tensor] | None = None, remote_slots: int = 1) -> None:
        """``remote`` (Ray Serve): batches go to it instead of an engine here, up to
        ``remote_slots`` at once; the model here only gives metadata, preprocessing and CAMs."""
        self.settings = settings = settings or ServeSettings()
        if not getattr(model, "num_classes", 0):
            raise ValueError("this model has no classifier (num_classes is 0); serve a model with classes")
        self.model = model.eval()
        spec = getattr(model, "spec", None)
        self.name = name or (spec.name if spec is not None else type(model).__name__.lower())
        self.weights = weights
        self.threads = settings.threads or os.cpu_count() or 1
        self.metrics = Metrics()
        self.predict = Predict(model, settings, metrics=self.metrics, cache=cache, remote=remote,
                               remote_slots=remote_slots)
        self.preprocess = Preprocess(model, name=self.name, max_pixels=settings.max_pixels, threads=self.threads,
                                     metrics=self.metrics)
        self.postprocess = Postprocess(model, self.name)
        # A model already in its deployed runtime keeps its PyTorch source for class activation maps.
        self.explain = Explain(getattr(model, "source_model", model))
        self.ready = False
        self.draining = False
        self._watch: asyncio.Task[None] | None = None
        self.replica = ""               # set by a backend with several copies (a response header)

    @property
    def batcher(self) -> Batcher:
        return self.predict.batcher

    @property
    def engine(self) -> InferenceEngine | None:
        """The inference engine here (None when batches go to remote replicas)."""
        return self.predict.engine

    @property
    def runtime(self) -> str:
        return self.predict.runtime

    # -- life ------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the batcher and run one warm-up batch; then the service is ready."""
        if self.ready:
            return
        self.batcher.start()
        self._watch = asyncio.get_running_loop().create_task(self._watch_loop())
        await self.predict.warm_up(self.preprocess.input_shape, self.settings.max_batch)
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
        await self.predict.close()
        self.preprocess.close()

    async def check_health(self) -> None:
        """Raises unless the model answers one image (Ray Serve's health check), on the
        inference thread, between batches."""
        await self.predict.check_health()

    async def _watch_loop(self, period_s: float = 0.05) -> None:
        """How late the event loop wakes from a short sleep: time every request waits before
        the app sees it (accepting, parsing, answering 429s) when the loop is busy."""
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(period_s)
            self.metrics.loop_lag_seconds.observe(max(0.0, loop.time() - start - period_s))

    # -- requests --------------------------------------------------------------------------
    def deadline(self, started: float) -> float:
        """The loop-time deadline of a request that arrived at ``started`` (``loop.time()``)."""
        return started + self.settings.timeout_s

    def metadata(self) -> dict[str, object]:
        """KServe V2 model metadata, plus how to prepare inputs and what the classes are."""
        c, s, _ = self.preprocess.input_shape
        classes = self.postprocess.num_classes
        return {
            "name": self.name, "versions": ["1"], "platform": f"effnet-{self.runtime}",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, c, s, s]},
                       {"name": "image", "datatype": "BYTES", "shape": [-1]}],
            "outputs": [{"name": "logits", "datatype": "FP32", "shape": [-1, classes]},
                        {"name": "probabilities", "datatype": "FP32", "shape": [-1, classes]}],
            "parameters": {"preprocessing": asdict(self.preprocess.preprocessing),
                           "classes": self.postprocess.class_names, "num_classes": classes,
                           "weights": self.weights, "max_batch": self.settings.max_batch},
        }
