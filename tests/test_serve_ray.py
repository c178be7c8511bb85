"""`effnet serve --backend ray` on a local Ray instance: two model replicas answer, and a
replica killed (SIGKILL) under load is replaced while no accepted request is lost."""

from __future__ import annotations

import asyncio
import io
import os
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from .optional import require  # noqa: E402

require("ray.serve")
require("fastapi")
httpx = require("httpx")

from .serving import Process, free_port, process_tree, small_weights, start_server, stop_tree  # noqa: E402

pytestmark = pytest.mark.slow


def answered_by(port: int) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {k: float(v) for k, v in re.findall(r'effnet_batches_by_replica_total\{replica="(\w+)"\} (\S+)', text)}


def replicas(server: subprocess.Popen, known: set[Process]) -> list[Process]:
    """This server's model replicas (Ray's workers run below it), noting every process seen
    below it in ``known`` for the cleanup; another test's Ray is never looked at."""
    tree = process_tree(server.pid)
    known |= tree
    return [p for p in tree if "ServeReplica:effnet:effnet-model" in p.command()]


def test_two_replicas_answer_and_a_killed_one_loses_no_request(tmp_path: Path) -> None:
    weights = small_weights(tmp_path / "w.safetensors")
    port = free_port()
    proc = start_server("--weights", str(weights), "--name", "fashion", "--backend", "ray", "--replicas", "2",
                        port=port, timeout=300)
    buffer = io.BytesIO()
    Image.new("RGB", (48, 40), (30, 160, 90)).save(buffer, "PNG")
    body = buffer.getvalue()
    known: set[Process] = set()
    try:
        codes: Counter = Counter()

        async def load(seconds_after_replacement: float) -> float:
            replaced_at = None
            async with httpx.AsyncClient(timeout=60) as client:
                async def worker(stop_flag: list[bool]) -> None:
                    while not stop_flag[0]:
                        try:
                            r = await client.post(f"http://127.0.0.1:{port}/v2/models/fashion/classify", content=body,
                                                  headers={"content-type": "image/png"})
                            codes[r.status_code] += 1
                        except httpx.HTTPError as error:
                            codes[type(error).__name__] += 1

                stop_flag = [False]
                workers = [asyncio.ensure_future(worker(stop_flag)) for _ in range(8)]
                deadline = time.monotonic() + 240
                while len(answered_by(port)) < 2 and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                before = answered_by(port)
                assert len(before) == 2, before                 # both replicas answer
                pids = replicas(proc, known)
                assert len(pids) == 2, pids
                os.kill(pids[0].pid, signal.SIGKILL)            # a replica dies under load
                while time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                    replicas(proc, known)                       # its replacement, for the cleanup
                    now = answered_by(port)
                    if replaced_at is None and len(now) == 3:   # its replacement answers too
                        replaced_at = time.monotonic()
                    if replaced_at is not None and time.monotonic() - replaced_at > seconds_after_replacement:
                        break
                stop_flag[0] = True
                await asyncio.gather(*workers)
            assert replaced_at is not None, f"no replacement replica answered: {answered_by(port)}"
            return replaced_at

        asyncio.run(load(2.0))
        assert set(codes) == {200}, codes                       # not one request lost or refused
        assert codes[200] > 50
        replicas(proc, known)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(120) == 0
    finally:
        stop_tree(proc, known)      # this server's processes, and Ray's that outlived it; nobody else's
