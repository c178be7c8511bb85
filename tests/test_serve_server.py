"""`effnet serve` as a user runs it: a real uvicorn server in a subprocess, spoken to by
Triton's own HTTP client, overloaded, and stopped with SIGTERM while it works."""

from __future__ import annotations

import asyncio
import io
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import effnet

from .optional import require  # noqa: E402

require("fastapi")
require("uvicorn")
httpx = require("httpx")

from .serving import free_port, small_weights, start_server, stop  # noqa: E402

pytestmark = pytest.mark.slow


def jpeg(seed: int = 0, size: int = 256) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


async def classify_many(port: int, bodies: list[bytes], model: str) -> list[httpx.Response | Exception]:
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=len(bodies))) as client:
        async def one(body: bytes):  # type: ignore[no-untyped-def]
            try:
                return await client.post(f"http://127.0.0.1:{port}/v2/models/{model}/classify", content=body,
                                         headers={"content-type": "image/jpeg"})
            except httpx.HTTPError as error:
                return error
        return await asyncio.gather(*(one(b) for b in bodies))


def test_triton_s_http_client_works_unchanged(tmp_path: Path) -> None:
    triton = require("tritonclient.http")
    weights = small_weights(tmp_path / "w.safetensors")
    local = effnet.create_model(None, weights=str(weights)).eval()
    port = free_port()
    proc = start_server("--weights", str(weights), "--name", "fashion", port=port)
    try:
        client = triton.InferenceServerClient(url=f"127.0.0.1:{port}")
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("fashion")
        meta = client.get_model_metadata("fashion")
        assert meta["inputs"][0]["shape"] == [-1, 1, 28, 28] and meta["parameters"]["classes"][1] == "Trouser"
        x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(1))
        tensor = triton.InferInput("input", [3, 1, 28, 28], "FP32")
        tensor.set_data_from_numpy(x.numpy())                      # binary by default, as Triton sends it
        result = client.infer("fashion", [tensor])                 # outputs returned binary by default
        with torch.no_grad():
            expected = local(x).numpy()
        assert np.allclose(result.as_numpy("logits"), expected, atol=1e-4)
        images = triton.InferInput("image", [2], "BYTES")
        images.set_data_from_numpy(np.array([jpeg(0), jpeg(1)], dtype=np.object_))
        top = client.infer("fashion", [images], outputs=[triton.InferRequestedOutput("probabilities", class_count=3)])
        entries = top.as_numpy("probabilities")
        assert entries.shape == (2, 3)
        score, index, label = entries[0, 0].decode().split(":")
        assert label == effnet.data.fashion_mnist.CLASSES[int(index)] and 0 < float(score) <= 1
        with pytest.raises(triton.InferenceServerException, match="unknown model"):
            client.infer("other", [tensor])
    finally:
        stop(proc)


def test_overload_gets_429_with_retry_after_and_every_accepted_request_is_answered() -> None:
    port = free_port()
    # Lite0 in eager PyTorch: ~30 ms an image on 2 cores, so 40 requests at once overflow a queue of 2.
    proc = start_server("--model", "efficientnet_lite0", "--runtime", "torch", "--max-queue", "2", "--max-batch", "2",
                        port=port)
    try:
        responses = asyncio.run(classify_many(port, [jpeg(i) for i in range(40)], "efficientnet_lite0"))
        codes = [r.status_code for r in responses if not isinstance(r, Exception)]
        assert len(codes) == 40, [r for r in responses if isinstance(r, Exception)]
        assert set(codes) <= {200, 429} and codes.count(200) >= 2 and codes.count(429) >= 1, codes
        for r in responses:
            if r.status_code == 429:
                assert int(r.headers["retry-after"]) >= 1 and "queue is full" in r.json()["error"]
            else:
                assert len(r.json()["predictions"]) == 5
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        assert f'effnet_rejections_total{{reason="queue_full"}} {float(codes.count(429))}' in metrics
    finally:
        stop(proc)


def queue_depth(text: str) -> float:
    """Requests admitted and not yet answered, from the server's /metrics."""
    found = re.search(r"^effnet_queue_depth (\S+)$", text, re.MULTILINE)
    assert found, text
    return float(found.group(1))


async def drain_scenario(port: int, proc: subprocess.Popen, count: int):  # type: ignore[no-untyped-def]
    """``count`` requests, every one admitted before SIGTERM; then readiness and late requests
    during the drain. Returns (requests still open at the signal, readiness, late, the first ones)."""
    url = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=count + 8)) as client:
        async def classify(body: bytes):  # type: ignore[no-untyped-def]
            try:
                return await client.post(f"{url}/v2/models/efficientnet_lite0/classify", content=body,
                                         headers={"content-type": "image/jpeg"})
            except httpx.HTTPError as error:
                return error

        first = [asyncio.ensure_future(classify(jpeg(i))) for i in range(count)]
        deadline = time.monotonic() + 60
        while True:   # admitted = still open in the server (its queue depth) + answered to us
            answered = sum(f.done() for f in first)     # counted before asking: never more than the server answered
            if queue_depth((await client.get(f"{url}/metrics")).text) + answered >= count:
                break
            assert time.monotonic() < deadline, "the server did not admit every request within 60 s"
            await asyncio.sleep(0.02)
        open_at_signal = count - sum(f.done() for f in first)
        proc.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.05)
        ready = await client.get(f"{url}/v2/health/ready")
        late = await asyncio.gather(*(classify(jpeg(100 + i)) for i in range(4)))
        return open_at_signal, ready, late, await asyncio.gather(*first)


def test_sigterm_drains_accepted_requests_then_exits_0() -> None:
    port = free_port()
    proc = start_server("--model", "efficientnet_lite0", "--runtime", "torch", "--max-batch", "4", port=port)
    try:
        open_at_signal, ready, late, admitted = asyncio.run(drain_scenario(port, proc, 48))
        assert open_at_signal >= 8, open_at_signal          # the signal came while the work was under way
        assert ready.status_code == 503 and ready.json() == {"ready": False}
        # Every request the server had admitted before the signal is answered, none dropped.
        codes = [r.status_code if not isinstance(r, Exception) else type(r).__name__ for r in admitted]
        assert codes == [200] * len(admitted), codes
        # Ones sent once readiness said draining are refused (or find the server already gone).
        for r in late:
            assert isinstance(r, httpx.TransportError) or (r.status_code == 503 and "draining" in r.json()["error"]), r
        assert proc.wait(60) == 0
        assert "still open" not in proc.stdout.read()  # type: ignore[union-attr]
    finally:
        stop(proc)


@pytest.mark.parametrize(("args", "message"), [
    (["--model", "nope"], "unknown model"),
    (["--model", "fmnist_s0", "--workers", "2"], "--backend ray --replicas"),
    (["--model", "fmnist_s0", "--timeout-s", "0"], "timeout_s must be positive"),
])
def test_bad_options_are_one_line_errors(args: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "effnet", "serve", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
