"""`effnet serve` as a user runs it: a real uvicorn server in a subprocess, spoken to by
Triton's own HTTP client, overloaded, and stopped with SIGTERM while it works."""

from __future__ import annotations

import asyncio
import io
import signal
import subprocess
import sys
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


def test_sigterm_drains_accepted_requests_then_exits_0() -> None:
    port = free_port()
    proc = start_server("--model", "efficientnet_lite0", "--runtime", "torch", "--max-batch", "4", port=port)
    try:
        async def scenario():  # type: ignore[no-untyped-def]
            work = asyncio.ensure_future(classify_many(port, [jpeg(i) for i in range(48)], "efficientnet_lite0"))
            await asyncio.sleep(0.5)                 # requests are in: decoding, queued, running
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.05)
            async with httpx.AsyncClient() as client:
                ready = await client.get(f"http://127.0.0.1:{port}/v2/health/ready")
            return ready, await work

        ready, responses = asyncio.run(scenario())
        assert ready.status_code == 503 and ready.json() == {"ready": False}
        codes = [r.status_code if not isinstance(r, Exception) else type(r).__name__ for r in responses]
        # Every request the server accepted is answered; ones that came after the signal are refused.
        assert set(codes) <= {200, 503} and codes.count(200) >= 4, codes
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
