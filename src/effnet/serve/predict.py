"""Predict: preprocessed rows -> logits. A request takes its places in the batcher's bounded
queue (:meth:`Predict.admission`, before its images are decoded), its rows join batches, and
each batch is one call of the inference engine on the inference thread, or of a remote model
replica on Ray Serve. Other work on the model (a class activation map) takes a place the
same way and runs alone in its turn (:meth:`Predict.call`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from .batcher import Batcher, Ticket
from .engine import InferenceEngine, yield_to_requests
from .metrics import Metrics
from .settings import ServeSettings


class Predict:
    def __init__(self, model: nn.Module, settings: ServeSettings, *, metrics: Metrics, cache: bool = True,
                 remote: Callable[[torch.Tensor], torch.Tensor] | None = None, remote_slots: int = 1) -> None:
        """``remote`` (Ray Serve): batches go to it instead of an engine here, up to
        ``remote_slots`` at once."""
        self.metrics = metrics
        self.remote = remote
        # One inference at a time (the runtime already uses every core), on a thread below the
        # event loop's priority.
        slots = remote_slots if remote is not None else 1
        self.executor = ThreadPoolExecutor(slots, thread_name_prefix="effnet-infer", initializer=yield_to_requests)
        # Built on the inference thread, so the runtime's own threads inherit its priority.
        self.engine = None if remote is not None else self.executor.submit(
            InferenceEngine, model, runtime=settings.runtime, device=settings.device, threads=settings.threads,
            cache=cache, batch=settings.max_batch).result()
        self.runtime = "remote" if self.engine is None else self.engine.runtime
        self.batcher = Batcher(self._run_batch, self.executor, max_batch=settings.max_batch,
                               max_delay_s=settings.max_delay_ms / 1000, max_queue=settings.max_queue,
                               max_in_flight=slots, observe=self._observe)

    @contextmanager
    def admission(self, count: int) -> Iterator[Ticket]:
        """``count`` places in the queue (QueueFull or Draining if refused), held for the block."""
        with self.batcher.admission(count) as ticket:
            self.metrics.queue_depth.set(self.batcher.depth)
            yield ticket
        self.metrics.queue_depth.set(self.batcher.depth)

    async def logits(self, ticket: Ticket, rows: list[torch.Tensor], deadline: float) -> np.ndarray:
        """Logits (N x classes) of admitted rows; DeadlineExceeded past ``deadline``."""
        answers = await asyncio.gather(*(self.batcher.submit(ticket, x, deadline) for x in rows))
        return torch.stack(answers).numpy()

    def call(self, ticket: Ticket, job: Callable[[], object], deadline: float) -> Awaitable[object]:
        """What ``job`` returns, run alone on the inference thread in its turn (not a coroutine
        of its own: no frame here keeps ``job``, and what it holds, alive while it waits)."""
        return self.batcher.call(ticket, job, deadline)

    async def warm_up(self, input_shape: tuple[int, ...], batch: int) -> None:
        warm = torch.zeros(batch, *input_shape)
        await asyncio.get_running_loop().run_in_executor(self.executor, self._run_batch, warm)

    async def check_health(self) -> None:
        """Raises unless the engine answers one image, on the inference thread, between batches."""
        if self.engine is not None:
            await asyncio.get_running_loop().run_in_executor(self.executor, self.engine.check)

    async def close(self) -> None:
        await self.batcher.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)

    def _run_batch(self, images: torch.Tensor) -> torch.Tensor:
        return self.remote(images) if self.engine is None else self.engine(images)  # type: ignore[misc]

    def _observe(self, name: str, value: object) -> None:
        self.metrics.observe(name, value)
        self.metrics.queue_depth.set(self.batcher.depth)
