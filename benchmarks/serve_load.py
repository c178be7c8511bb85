"""The load side of bench_serve.py: the servers it starts and stops, closed-loop load from
hey (Debian's Go load generator), open-loop load from an aiohttp client, the client's own
priority, and the server's histograms read from ``/metrics``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np

from serve_queue_model import gap


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    array = np.array(values) * 1000
    return {"p50_ms": float(np.percentile(array, 50)), "p99_ms": float(np.percentile(array, 99)), "max_ms": float(array.max())}



class Server:
    def __init__(self, args: list[str], port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}{self.ready_path}", timeout=2).status_code in (200, 405):
                    return
            except httpx.HTTPError:
                time.sleep(0.5)
        raise RuntimeError(f"server {args} did not come up")

    ready_path = "/v2/health/ready"

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class PeerServer(Server):
    ready_path = "/docs"



def hey(url: str, body: Path, *, requests: int, concurrency: int, rate: float | None = None) -> dict[str, object]:
    """``requests`` POSTs of ``body`` from ``concurrency`` workers of hey (a Go load generator,
    Debian's ``hey``: far less CPU per request than a Python client on the same two cores).
    With ``rate``, each worker is held to rate / concurrency requests per second. Requests
    that got no HTTP answer (connection errors, timeouts) are ``lost``."""
    requests = max(concurrency, requests // concurrency * concurrency)  # hey gives each worker n // c
    command = ["hey", "-n", str(requests), "-c", str(concurrency), "-m", "POST", "-T", "image/jpeg", "-D", str(body),
               "-t", "60", "-o", "csv"]
    if rate:
        command += ["-q", f"{rate / concurrency:.4f}"]
    start = time.perf_counter()
    out = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    elapsed = time.perf_counter() - start
    rows = [line.split(",") for line in out.splitlines()[1:] if line]
    by_code: dict[str, list[float]] = {}
    for row in rows:
        by_code.setdefault(row[6], []).append(float(row[0]))
    ok = by_code.get("200", [])
    return {"concurrency": concurrency, "rate": rate, "requests": requests, "seconds": elapsed,
            "codes": {code: len(v) for code, v in sorted(by_code.items())}, "lost": requests - len(rows),
            "img_per_s": len(ok) / elapsed, **percentiles(ok),
            "rejected_429": percentiles(by_code.get("429", []))}



async def open_loop(url: str, images: list[bytes], rate: float, seconds: float, seed: int = 0,
                    arrivals: str = "poisson") -> dict[str, object]:
    """Arrivals at ``rate`` per second whatever the server does (an open loop, which hey's
    fixed-rate workers are not): Poisson (exponential gaps) or ``paced`` (equal gaps), from an
    aiohttp client in this process. aiohttp, not httpx: its C HTTP parser costs the shared
    cores a fraction of httpx's per request, and the client's own lag is in every latency it
    records (an httpx client was late here by up to 464 ms under 2x overload)."""
    import aiohttp

    rng = random.Random(seed)
    by_code: dict[str, list[float]] = {}
    slow_429: list[tuple[float, float]] = []   # (seconds into the run, ms) of refusals slower than 20 ms
    headers = {"content-type": "image/jpeg"}
    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as client:
        async def one(i: int) -> None:
            start = time.perf_counter()
            try:
                async with client.post(url, data=images[i % len(images)], headers=headers) as r:
                    await r.read()
                    code = str(r.status)
            except (TimeoutError, aiohttp.ClientError) as error:
                code = type(error).__name__
            seconds = time.perf_counter() - start
            by_code.setdefault(code, []).append(seconds)
            if code == "429" and seconds > 0.02:
                slow_429.append((round(start - began, 3), round(seconds * 1000, 1)))

        lags: list[float] = []
        running = True

        async def watch() -> None:  # how late this client's own loop wakes: its lag is in every latency it records
            while running:
                before = time.perf_counter()
                await asyncio.sleep(0.05)
                lags.append(time.perf_counter() - before - 0.05)

        watcher = asyncio.ensure_future(watch())
        tasks = []
        began = start = time.perf_counter()
        due, i = start, 0
        while due - start < seconds:
            due += gap(rng, rate, arrivals)
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.ensure_future(one(i)))
            i += 1
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
        running = False
        await watcher
    ok = by_code.get("200", [])
    return {"rate": rate, "seconds": seconds, "arrivals": arrivals, "requests": i, "elapsed": elapsed,
            "codes": {code: len(v) for code, v in sorted(by_code.items())},
            "lost": sum(len(v) for code, v in by_code.items() if not code.isdigit()),
            **percentiles(ok), "rejected_429": percentiles(by_code.get("429", [])), "slow_429": sorted(slow_429)[:50],
            "client_loop_lag": percentiles(lags)}



@contextlib.contextmanager
def client_priority(nice: int):  # type: ignore[no-untyped-def]
    """This process at ``nice`` for the block (then back), if the OS allows it; yields the
    niceness it ran at. The server is a child started earlier, so it keeps its own."""
    before = os.getpriority(os.PRIO_PROCESS, 0)
    try:
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    except PermissionError:
        nice = before
    try:
        yield nice
    finally:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, before)
        except PermissionError:  # pragma: no cover - raising priority back needs the same right
            pass



def server_buckets(port: int, metric: str, code: str | None = None) -> dict[float, float]:
    """One of the server's own histograms (cumulative counts by upper bound, from ``GET
    /metrics``): ``effnet_request_duration_seconds`` of classify for one status ``code`` (time
    inside the app, which excludes the kernel's accept queue, the loop's wait and the client),
    or ``effnet_event_loop_lag_seconds``."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=30).text
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"{metric}_bucket" and (code is None or (
                    sample.labels.get("code") == code and sample.labels.get("endpoint", "").endswith("/classify"))):
                buckets[float(sample.labels["le"])] = sample.value
    return buckets



def server_quantiles(before: dict[float, float], after: dict[float, float]) -> dict[str, float]:
    """From two scrapes: how many, the share within 20 ms, and the bucket bound that holds the
    50th and 99th percentile (a histogram gives bounds, not exact quantiles)."""
    counts = {le: after.get(le, 0.0) - before.get(le, 0.0) for le in sorted(after)}
    total = counts.get(float("inf"), 0.0)
    def bound(q: float) -> float:
        return next((le * 1000 for le, c in counts.items() if total and c >= q * total), float("nan"))
    return {"count": total, "within_20ms": counts.get(0.02, 0.0) / total if total else float("nan"),
            "p50_bound_ms": bound(0.5), "p99_bound_ms": bound(0.99)}

