"""Dynamic batching for a server: requests wait in a bounded queue and run together.

Why by hand: Ray Serve's ``@serve.batch`` lives inside Ray, and neither FastAPI nor uvicorn
batches; what a server on one machine needs is small: admission control (the queue is
bounded, counting requests still being decoded, so overload is refused before any work is
spent on it), deadlines (an expired request is dropped before inference, never computed),
and one inference at a time on an executor, so the event loop keeps accepting while the
runtime uses every core.

The rule for forming a batch: take what is queued (up to ``max_batch``); if requests are
still being decoded, wait for them at most ``max_delay_s``; if none are, dispatch at once, so
a lone request never waits for company that is not coming. Work that uses the model outside
a batch (a class activation map) takes a place the same way and runs alone in its turn.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from .rejections import DeadlineExceeded, Draining, QueueFull


@dataclass
class Ticket:
    """Places reserved by :meth:`Batcher.admission` for images not yet submitted."""

    unsent: int


@dataclass
class _Item:
    x: torch.Tensor | None          # one preprocessed image, C x H x W (None for a job)
    future: asyncio.Future
    deadline: float                 # loop.time() past which the answer is no use
    queued_at: float = 0.0
    job: Callable[[], object] | None = None     # work that runs alone in its turn (a CAM)


class Batcher:
    """``await batcher.submit(x, deadline)`` -> the model's output row for one image.

    ``run_batch(images)`` (N x C x H x W -> N x K) runs on ``executor``, ``max_in_flight``
    batches at a time (1 for a local runtime that uses every core; one per replica when
    batches go to remote replicas).
    ``observe`` (optional) receives ``(name, value)`` pairs for metrics: ``queue_wait`` per
    request, ``inference`` and ``batch_size`` per batch, ``rejected`` with a reason.
    """

    def __init__(self, run_batch: Callable[[torch.Tensor], torch.Tensor], executor: Executor, *, max_batch: int = 8,
                 max_delay_s: float = 0.005, max_queue: int = 64, max_in_flight: int = 1,
                 observe: Callable[[str, object], None] | None = None) -> None:
        if max_batch < 1 or max_queue < 1 or max_delay_s < 0 or max_in_flight < 1:
            raise ValueError(f"max_batch and max_queue must be at least 1 and max_delay_s at least 0, got "
                             f"{max_batch}, {max_queue}, {max_delay_s}")
        self.run_batch = run_batch
        self.executor = executor
        self.max_batch = max_batch
        self.max_delay_s = max_delay_s
        self.max_queue = max_queue
        self.max_in_flight = max_in_flight
        self.observe = observe or (lambda name, value: None)
        self.draining = False
        self._queue: collections.deque[_Item] = collections.deque()
        self._arriving = 0      # admitted, still being decoded
        self._running = 0       # in the batch on the executor
        self._wake: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._task: asyncio.Task | None = None

    # -- state -----------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Requests admitted and not yet answered (decoding, queued or running)."""
        return self._arriving + len(self._queue) + self._running

    @property
    def queued(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        """Start the dispatch loop on the running event loop (idempotent)."""
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._idle = asyncio.Event()
            self._idle.set()
            self._task = asyncio.get_running_loop().create_task(self._dispatch_loop(), name="effnet-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for item in self._queue:
            if not item.future.done():
                item.future.set_exception(Draining("the server is shutting down"))
        self._queue.clear()

    async def wait_idle(self, timeout_s: float | None = None) -> bool:
        """Wait until every admitted request is answered; False if ``timeout_s`` passed first."""
        self.start()
        assert self._idle is not None
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    # -- requests --------------------------------------------------------------------------
    def check_room(self, count: int = 1) -> None:
        """Raise :class:`QueueFull` now if ``count`` images would not be admitted (a cheap
        early answer before a request's body is read; :meth:`admission` still decides)."""
        if self._arriving + len(self._queue) + count > self.max_queue:
            self.observe("rejected", QueueFull.reason)
            raise QueueFull(f"the queue is full ({self.max_queue} images waiting); retry after a second")

    @contextmanager
    def admission(self, count: int = 1) -> Iterator[Ticket]:
        """Reserve ``count`` places before decoding (raises :class:`QueueFull` or
        :class:`Draining`); inside the block, :meth:`submit` those images with the ticket."""
        self.start()
        if self.draining:
            self.observe("rejected", Draining.reason)
            raise Draining("the server is draining (shutting down); send the request to another replica")
        self.check_room(count)
        ticket = Ticket(count)
        self._arriving += count
        self._busy()
        try:
            yield ticket
        finally:
            self._arriving -= ticket.unsent
            ticket.unsent = 0
            self._maybe_idle()
            self._signal()   # the dispatcher may be waiting for these arrivals

    async def submit(self, ticket: Ticket, x: torch.Tensor, deadline: float) -> torch.Tensor:
        """Queue one image of an admitted request and wait for its output row."""
        return await self._wait(self._enqueue(ticket, x, None, deadline), deadline)  # type: ignore[return-value]

    async def call(self, ticket: Ticket, job: Callable[[], object], deadline: float) -> object:
        """Queue ``job`` for one admitted place and wait for what it returns: it runs alone on
        the executor in its turn, between batches, under the same deadline; work that uses
        the model outside a batch (a CAM) so never races the batches nor waits unbounded."""
        item = self._enqueue(ticket, None, job, deadline)
        del job     # the queue holds it now, and lets go of it once it ran
        return await self._wait(item, deadline)

    def _enqueue(self, ticket: Ticket, x: torch.Tensor | None, job: Callable[[], object] | None,
                 deadline: float) -> _Item:
        if ticket.unsent < 1:
            raise RuntimeError("this admission has no place left; admit one place per image")
        loop = asyncio.get_running_loop()
        item = _Item(x, loop.create_future(), deadline, loop.time(), job)
        ticket.unsent -= 1
        self._arriving -= 1
        self._queue.append(item)
        self._signal()
        return item

    async def _wait(self, item: _Item, deadline: float) -> object:
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(asyncio.shield(item.future), max(0.0, deadline - loop.time()))
        except TimeoutError:
            item.future.cancel()  # still queued: the dispatcher drops it; running: its result is discarded
            self.observe("rejected", DeadlineExceeded.reason)
            raise DeadlineExceeded("no answer within the request timeout; the server is overloaded, retry later "
                                   "or raise --timeout-s") from None

    # -- the loop --------------------------------------------------------------------------
    def _signal(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _busy(self) -> None:
        if self._idle is not None:
            self._idle.clear()

    def _maybe_idle(self) -> None:
        if self._idle is not None and self.depth == 0:
            self._idle.set()

    async def _next_batch(self) -> list[_Item]:
        """What runs next: a job alone, or images up to ``max_batch`` and never past a job."""
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while not self._queue:
            self._wake.clear()
            await self._wake.wait()
        if self._queue[0].job is not None:
            return [self._queue.popleft()]
        close_at = loop.time() + self.max_delay_s
        while len(self._queue) < self.max_batch and self._arriving > 0 and self._queue[-1].job is None:
            remaining = close_at - loop.time()
            if remaining <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                break
        images = next((i for i, item in enumerate(self._queue) if item.job is not None), len(self._queue))
        return [self._queue.popleft() for _ in range(min(self.max_batch, images))]

    async def _dispatch_loop(self) -> None:
        slots = asyncio.Semaphore(self.max_in_flight)
        running: set[asyncio.Task] = set()
        try:
            while True:
                await slots.acquire()     # while every slot computes, requests pile up into the next batch
                # No local keeps the batch: once answered, its items (a job's decoded image) are freed.
                self._launch(await self._next_batch(), slots, running)
        finally:
            for task in running:
                task.cancel()

    def _launch(self, batch: list[_Item], slots: asyncio.Semaphore, running: set[asyncio.Task]) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        live = []
        for item in batch:
            if item.future.done():      # the caller gave up (deadline) while it waited
                continue
            if now >= item.deadline:
                item.future.set_exception(DeadlineExceeded("expired in the queue"))
                continue
            if item.job is None:
                self.observe("queue_wait", now - item.queued_at)
            live.append(item)
        if not live:
            slots.release()
            self._maybe_idle()
            return
        count = len(live)
        self._running += count
        task = loop.create_task(self._run(live))
        running.add(task)
        task.add_done_callback(functools.partial(self._finished, count=count, slots=slots, running=running))

    def _finished(self, task: asyncio.Task, count: int, slots: asyncio.Semaphore, running: set[asyncio.Task]) -> None:
        running.discard(task)
        self._running -= count
        slots.release()
        self._maybe_idle()

    async def _run(self, live: list[_Item]) -> None:
        loop = asyncio.get_running_loop()
        try:
            job, live[0].job = live[0].job, None     # its caller's item lets go of the job's input
            if job is not None:
                outputs = [await loop.run_in_executor(self.executor, job)]
            else:
                images = torch.stack([item.x for item in live])  # type: ignore[misc]
                start = time.perf_counter()
                outputs = await loop.run_in_executor(self.executor, self.run_batch, images)
                self.observe("inference", time.perf_counter() - start)
                self.observe("batch_size", len(live))
            for item, row in zip(live, outputs):
                if not item.future.done():
                    item.future.set_result(row)
        except Exception as error:  # noqa: BLE001 - the runtime failed: every caller of the batch hears it
            for item in live:
                if not item.future.done():
                    item.future.set_exception(error)
