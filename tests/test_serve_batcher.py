"""The server's batcher without a web server: batches form and split as the rules say, the
queue is bounded, deadlines drop requests before inference, errors reach every caller of
their batch, and a job (a CAM) runs alone in its turn."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from effnet.serve.batcher import Batcher
from effnet.serve.rejections import DeadlineExceeded, Draining, QueueFull


class Recorder:
    """run_batch that records batch sizes; optionally blocks until released."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.sizes: list[int] = []
        self.seen: list[float] = []
        self.gate = gate

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.gate is not None:
            self.gate.wait(5)
        self.sizes.append(images.shape[0])
        self.seen += images[:, 0, 0, 0].tolist()
        return images.flatten(1)[:, :2] * 2


def image(value: float) -> torch.Tensor:
    return torch.full((1, 2, 2), value)


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coroutine, 20))


def test_requests_being_decoded_join_one_batch_and_rows_go_back_to_their_callers() -> None:
    recorder = Recorder()

    async def main() -> list[torch.Tensor]:
        loop = asyncio.get_running_loop()
        batcher = Batcher(recorder, ThreadPoolExecutor(1), max_batch=4, max_delay_s=5.0, max_queue=16)

        async def one(value: float) -> torch.Tensor:
            with batcher.admission() as ticket:
                await asyncio.sleep(0.01 * value)  # "decoding", so the others are still arriving
                return await batcher.submit(ticket, image(value), loop.time() + 10)

        out = await asyncio.gather(*(one(float(v)) for v in range(6)))
        await batcher.stop()
        return out

    rows = run(main())
    assert [float(r[0]) for r in rows] == [2.0 * v for v in range(6)]   # each caller got its own row
    assert recorder.sizes == [4, 2]                                        # max_batch, then the rest
    assert sorted(recorder.seen) == [float(v) for v in range(6)]


def test_a_lone_request_is_dispatched_at_once_not_after_the_delay() -> None:
    recorder = Recorder()

    async def main() -> float:
        loop = asyncio.get_running_loop()
        batcher = Batcher(recorder, ThreadPoolExecutor(1), max_batch=8, max_delay_s=30.0, max_queue=4)
        start = loop.time()
        with batcher.admission() as ticket:
            await batcher.submit(ticket, image(1), loop.time() + 60)
        await batcher.stop()
        return loop.time() - start

    # Nobody else is being decoded, so the 30 s delay must not apply (wait_for in run() allows 20 s).
    assert run(main()) < 20
    assert recorder.sizes == [1]


def test_the_queue_is_bounded_before_decoding_and_draining_refuses_new_work() -> None:
    async def main() -> None:
        batcher = Batcher(Recorder(), ThreadPoolExecutor(1), max_batch=2, max_queue=3)
        with batcher.admission(2):
            with batcher.admission(1):
                with pytest.raises(QueueFull, match="queue is full"):
                    with batcher.admission(1):
                        pass
            with pytest.raises(QueueFull):
                with batcher.admission(2):
                    pass
        assert batcher.depth == 0
        batcher.draining = True
        with pytest.raises(Draining):
            with batcher.admission():
                pass
        await batcher.stop()

    run(main())


def test_an_expired_request_is_dropped_before_inference() -> None:
    gate = threading.Event()
    recorder = Recorder(gate)

    async def main() -> tuple[object, object]:
        loop = asyncio.get_running_loop()
        batcher = Batcher(recorder, ThreadPoolExecutor(1), max_batch=1, max_delay_s=0, max_queue=8)

        async def one(value: float, timeout: float):  # type: ignore[no-untyped-def]
            with batcher.admission() as ticket:
                return await batcher.submit(ticket, image(value), loop.time() + timeout)

        first = asyncio.ensure_future(one(1.0, 10))
        await asyncio.sleep(0.05)                     # the first batch holds the executor
        second = asyncio.ensure_future(one(2.0, 0.05))
        await asyncio.sleep(0.3)
        gate.set()
        results = await asyncio.gather(first, second, return_exceptions=True)
        assert await batcher.wait_idle(5)
        await batcher.stop()
        return tuple(results)

    first, second = run(main())
    assert isinstance(first, torch.Tensor) and isinstance(second, DeadlineExceeded)
    assert recorder.seen == [1.0]   # the expired image never reached the model


def test_a_runtime_failure_reaches_every_caller_of_its_batch_and_the_next_batch_runs() -> None:
    calls = []

    def flaky(images: torch.Tensor) -> torch.Tensor:
        calls.append(images.shape[0])
        if len(calls) == 1:
            raise RuntimeError("runtime exploded")
        return images.flatten(1)

    async def main():  # type: ignore[no-untyped-def]
        loop = asyncio.get_running_loop()
        batcher = Batcher(flaky, ThreadPoolExecutor(1), max_batch=4, max_delay_s=1.0, max_queue=8)
        with batcher.admission(2) as ticket:
            first = await asyncio.gather(*(batcher.submit(ticket, image(v), loop.time() + 5) for v in (1, 2)),
                                         return_exceptions=True)
        with batcher.admission() as ticket:
            second = await batcher.submit(ticket, image(3), loop.time() + 5)
        await batcher.stop()
        return first, second

    first, second = run(main())
    assert all(isinstance(e, RuntimeError) for e in first)
    assert float(second[0]) == 3.0


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_batch"):
        Batcher(Recorder(), ThreadPoolExecutor(1), max_batch=0)


def test_a_deadline_in_the_past_is_504_at_once() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        batcher = Batcher(Recorder(), ThreadPoolExecutor(1), max_queue=2)
        start = time.perf_counter()
        with pytest.raises(DeadlineExceeded):
            with batcher.admission() as ticket:
                await batcher.submit(ticket, image(1), loop.time() - 1)
        assert time.perf_counter() - start < 5
        await batcher.stop()

    run(main())


def test_with_two_slots_two_batches_compute_at_once() -> None:
    # Each batch waits at a two-party barrier: it only passes if both batches run together.
    barrier = threading.Barrier(2, timeout=10)

    def remote(images: torch.Tensor) -> torch.Tensor:
        barrier.wait()
        return images.flatten(1)

    async def main() -> list[torch.Tensor]:
        loop = asyncio.get_running_loop()
        batcher = Batcher(remote, ThreadPoolExecutor(2), max_batch=1, max_delay_s=0, max_queue=8, max_in_flight=2)
        with batcher.admission(2) as ticket:
            rows = await asyncio.gather(*(batcher.submit(ticket, image(v), loop.time() + 15) for v in (1, 2)))
        await batcher.stop()
        return rows

    assert [float(r[0]) for r in run(main())] == [1.0, 2.0]


def test_a_job_runs_alone_in_its_turn_and_keeps_its_place_in_the_line() -> None:
    gate = threading.Event()
    recorder = Recorder(gate)
    order: list[object] = []

    async def main() -> object:
        loop = asyncio.get_running_loop()
        batcher = Batcher(recorder, ThreadPoolExecutor(1), max_batch=4, max_delay_s=0, max_queue=8)

        async def images(*values: float) -> None:
            with batcher.admission(len(values)) as ticket:
                await asyncio.gather(*(batcher.submit(ticket, image(v), loop.time() + 10) for v in values))

        async def job() -> object:
            with batcher.admission() as ticket:
                return await batcher.call(ticket, lambda: order.append(list(recorder.sizes)) or "done", loop.time() + 10)

        first = asyncio.ensure_future(images(1))
        await asyncio.sleep(0.05)            # the first batch holds the executor; the rest queue behind it
        rest = []
        for arrival in (images(2, 3), job(), images(4)):
            rest.append(asyncio.ensure_future(arrival))
            await asyncio.sleep(0.02)
        gate.set()
        await first
        results = await asyncio.gather(*rest)
        await batcher.stop()
        return results[1]

    assert run(main()) == "done"
    assert recorder.sizes == [1, 2, 1]       # the job split the queue: images before it, then after it
    assert order == [[1, 2]]                  # and ran between those two batches, on the executor
