"""The server's batcher and protocol without a web server: batches form and split as the
rules say, the queue is bounded, deadlines drop requests before inference, errors reach
every caller of their batch; the KServe V2 parser and encoder in JSON and binary."""

from __future__ import annotations

import asyncio
import base64
import json
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from effnet.serve.batcher import Batcher, DeadlineExceeded, Draining, QueueFull
from effnet.serve.postprocess import encode_infer
from effnet.serve.protocol import PayloadTooLarge, ProtocolError, parse_infer


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


# -- protocol ------------------------------------------------------------------------------------------

def test_json_fp32_and_bytes_inputs_parse() -> None:
    x = np.arange(2 * 1 * 2 * 2, dtype=np.float32).reshape(2, 1, 2, 2)
    body = json.dumps({"id": "a", "inputs": [{"name": "input", "shape": [2, 1, 2, 2], "datatype": "FP32",
                                              "data": x.tolist()}]}).encode()
    parsed = parse_infer(body, None, max_images=8)
    assert parsed.id == "a" and parsed.count == 2 and np.array_equal(parsed.tensor, x)
    assert parsed.outputs[0].name == "logits" and not parsed.outputs[0].binary
    images = [b"\x89PNG one", b"two"]
    body = json.dumps({"inputs": [{"name": "image", "shape": [2], "datatype": "BYTES",
                                   "data": [base64.b64encode(i).decode() for i in images]}],
                       "outputs": [{"name": "probabilities", "parameters": {"classification": 3}}]}).encode()
    parsed = parse_infer(body, None, max_images=8)
    assert parsed.images == images and parsed.outputs[0].classification == 3


def test_binary_extension_inputs_parse_as_triton_sends_them() -> None:
    x = np.random.default_rng(0).standard_normal((1, 3, 2, 2)).astype(np.float32)
    raw = x.tobytes()
    head = json.dumps({"inputs": [{"name": "input", "shape": [1, 3, 2, 2], "datatype": "FP32",
                                   "parameters": {"binary_data_size": len(raw)}}],
                       "parameters": {"binary_data_output": True}}).encode()
    parsed = parse_infer(head + raw, str(len(head)), max_images=4)
    assert np.array_equal(parsed.tensor, x) and parsed.outputs[0].binary
    blob = b"".join(struct.pack("<I", len(b)) + b for b in (b"abc", b"de"))
    head = json.dumps({"inputs": [{"name": "image", "shape": [2, 1], "datatype": "BYTES",
                                   "parameters": {"binary_data_size": len(blob)}}]}).encode()
    assert parse_infer(head + blob, str(len(head)), max_images=4).images == [b"abc", b"de"]


@pytest.mark.parametrize(("body", "message"), [
    (b"not json", "not JSON"),
    (b'{"inputs": []}', "one tensor"),
    (b'{"inputs": [{"name": "input", "shape": [1, 1, 2], "datatype": "FP32", "data": [1, 2]}]}', "N, C, H, W"),
    (b'{"inputs": [{"name": "input", "shape": [1, 1, 1, 2], "datatype": "FP32", "data": [1]}]}', "needs 2 values"),
    (b'{"inputs": [{"name": "input", "shape": [1, 1, 1, 1], "datatype": "INT8", "data": [1]}]}', "must be FP32"),
    (b'{"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["%%%"]}]}', "not valid base64"),
    (b'{"inputs": [{"name": "tensor", "shape": [1], "datatype": "BYTES", "data": ["aa=="]}]}', "unknown input"),
    (b'{"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": ["aa=="]}], '
     b'"outputs": [{"name": "features"}]}', "unknown output"),
    (b'{"inputs": [{"name": "input", "shape": [0, 1, 1, 1], "datatype": "FP32", "data": []}]}', "no images"),
])
def test_malformed_requests_say_what_is_wrong(body: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message) as caught:
        parse_infer(body, None, max_images=4)
    assert caught.value.status == 400


def test_too_many_images_is_413_and_a_bad_header_length_is_400() -> None:
    body = b'{"inputs": [{"name": "image", "shape": [9], "datatype": "BYTES", "data": []}]}'
    with pytest.raises(PayloadTooLarge):
        parse_infer(body, None, max_images=8)
    with pytest.raises(ProtocolError, match="does not fit"):
        parse_infer(b"{}", "99", max_images=8)


def test_outputs_encode_as_json_binary_and_classification() -> None:
    logits = np.array([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]], dtype=np.float32)
    request = parse_infer(json.dumps({"id": "r", "inputs": [{"name": "input", "shape": [2, 1, 1, 1], "datatype": "FP32",
                                                             "data": [0, 0]}],
                                      "outputs": [{"name": "logits", "parameters": {"classification": 2}},
                                                  {"name": "probabilities", "parameters": {"binary_data": True}}]}).encode(),
                          None, max_images=4)
    body, headers = encode_infer("m", request, logits, ["a", "b", "c"])
    length = int(headers["inference-header-content-length"])
    head = json.loads(body[:length])
    assert head["id"] == "r" and head["model_name"] == "m"
    assert head["outputs"][0]["data"] == ["2.000000:1:b", "1.000000:2:c", "3.000000:0:a", "0.000000:1:b"]
    probabilities = np.frombuffer(body[length:], dtype="<f4").reshape(2, 3)
    assert np.allclose(probabilities, torch.from_numpy(logits).softmax(1).numpy(), atol=1e-6)
    assert head["outputs"][1]["parameters"]["binary_data_size"] == 24


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
