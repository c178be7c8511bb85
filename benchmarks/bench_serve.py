"""`effnet serve` under load on this machine: loopback, Lite0 (official weights) at 224 px,
onnxruntime, 2 threads. Closed-loop load comes from hey (Debian's Go load generator, one
320 x 240 JPEG of a real photo per request); open-loop load (Poisson or paced arrivals, for half
load and overload) from an aiohttp client in this process. Both share the two cores with the
server, as any load generator on one machine must. ``--client-nice -10`` runs the open-loop
client ahead of the server (where the OS allows it): a check on whether the client's own lag
is what the overload latencies record (session 7, with httpx: it was not; the client then took
the CPU the server's loop needs).

    python benchmarks/bench_serve.py [--seconds 15] [--out benchmarks/results]

Measured, in one run: offline `effnet predict` (same runtime, batch 1 and 8) on JPEGs like
it; the server at concurrency 1, 8 and 32 (throughput, p50, p99); half load; dynamic
batching off (--max-batch 1); 2x overload for 10 s (codes, 429 latency, unanswered
requests); server memory after 1,000 and 10,000 requests; and a FastAPI endpoint running
timm eager per request (serve_peer_timm.py) at concurrency 1 and 32.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import multiprocessing
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import torch
from PIL import Image

import effnet
from effnet.bench.report import cpu_peak
from effnet.deploy.runtime_choice import runtime_model
from effnet.predict import iter_predictions

HERE = Path(__file__).resolve().parent
MODEL = "efficientnet_lite0"


def photos(count: int, seed: int = 0) -> list[bytes]:
    """JPEG uploads: random crops of scikit-image's photographs at 320 x 240, quality 90."""
    from skimage import data

    sources = [getattr(data, n)() for n in ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")]
    rng = random.Random(seed)
    out = []
    for i in range(count):
        image = Image.fromarray(sources[i % len(sources)]).convert("RGB")
        w, h = image.size
        side = int(min(w, h) * rng.uniform(0.5, 1.0))
        left, top = rng.randint(0, w - side), rng.randint(0, h - side)
        buffer = io.BytesIO()
        image.crop((left, top, left + side, top + side * 3 // 4)).resize((320, 240)).save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    array = np.array(values) * 1000
    return {"p50_ms": float(np.percentile(array, 50)), "p99_ms": float(np.percentile(array, 99)), "max_ms": float(array.max())}


def offline(images: list[bytes], folder: Path) -> dict[str, float]:
    """`effnet predict` on the same JPEGs from disk, onnxruntime, batch 8 and batch 1."""
    torch.set_num_threads(2)
    paths = []
    for i, data in enumerate(images):
        (folder / f"{i:03d}.jpg").write_bytes(data)
        paths.append(folder / f"{i:03d}.jpg")
    model = runtime_model(effnet.create_model(MODEL, weights="lite0.official"), "onnx", threads=2)
    list(iter_predictions(paths[:16], model, batch_size=8))                 # warm-up
    rates = []
    for _ in range(3):
        start = time.perf_counter()
        list(iter_predictions(paths, model, batch_size=8))
        rates.append(len(paths) / (time.perf_counter() - start))
    single = []
    for path in paths[:100]:
        start = time.perf_counter()
        list(iter_predictions([path], model, batch_size=1, num_workers=1))
        single.append(time.perf_counter() - start)
    return {"batch8_img_per_s": statistics.median(rates), "batch1_p50_ms": float(np.median(single) * 1000)}


def offline_apart(images: list[bytes]) -> dict[str, float]:
    """:func:`offline` in a process of its own, so that the load generator's process holds no
    model and no runtime threads (a client on another machine would not)."""
    with tempfile.TemporaryDirectory() as tmp, ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(offline, images, Path(tmp)).result()


def batch_seconds(max_batch: int) -> list[float]:
    """Seconds the server's runtime takes for a batch of 1 .. ``max_batch`` preprocessed images:
    onnxruntime as `effnet serve --runtime onnx --threads 2` builds it (one session per core,
    no spinning), median of 15 after 3 warm-ups."""
    torch.set_num_threads(2)
    model = runtime_model(effnet.create_model(MODEL, weights="lite0.official"), "onnx", threads=2, spin=False,
                          batch=max_batch)
    times = []
    with torch.inference_mode():
        for b in range(1, max_batch + 1):
            x = torch.randn(b, 3, 224, 224)
            runs = []
            for i in range(18):
                start = time.perf_counter()
                model(x)
                if i >= 3:
                    runs.append(time.perf_counter() - start)
            times.append(statistics.median(runs))
    return times


def batch_seconds_apart(max_batch: int) -> list[float]:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(batch_seconds, max_batch).result()


def gap(rng: random.Random, rate: float, arrivals: str) -> float:
    """Seconds to the next arrival: exponential (Poisson arrivals) or ``1 / rate`` (paced)."""
    return rng.expovariate(rate) if arrivals == "poisson" else 1.0 / rate


def ideal_batcher(batch_s: list[float], saturated: float, rate: float, seconds: float, *, arrivals: str = "poisson",
                  runs: int = 200, seed: int = 0) -> dict[str, object]:
    """What the half-load latencies of a perfect batching server would be: a simulated queue
    with no client, no loop lag and no scheduling noise. Requests arrive as the benchmark sends
    them; whenever the server is idle it takes everything waiting (up to ``len(batch_s)``) as one
    batch, which costs the runtime's measured time plus the per-image work outside it (HTTP,
    decoding: what the measured saturated throughput leaves over, ``1/saturated - t(B)/B``).
    Returns the p50, p99 and the goal's ratio p99 / (2 p50 + 5 ms) over ``runs`` runs as long
    as the benchmark's (median and 10th-90th percentile), and for one run 100x as long.
    A queue model is written by hand here: no library simulates this batching policy."""
    max_batch = len(batch_s)
    per_image = max(0.0, 1.0 / saturated - batch_s[-1] / max_batch)
    cost = [0.0] + [t + b * per_image for b, t in enumerate(batch_s, start=1)]

    def one(count: int, rng: random.Random) -> tuple[float, float]:
        t, arrived = 0.0, []
        for _ in range(count):
            t += gap(rng, rate, arrivals)
            arrived.append(t)
        latencies, free, i = [], 0.0, 0
        while i < count:
            start = max(free, arrived[i])
            j = i
            while j < count and j - i < max_batch and arrived[j] <= start:
                j += 1
            free = start + cost[j - i]
            latencies += [free - a for a in arrived[i:j]]
            i = j
        p50, p99 = np.percentile(np.array(latencies) * 1000, [50, 99])
        return float(p50), float(p99)

    rng = random.Random(seed)
    count = max(1, int(rate * seconds))
    samples = [one(count, rng) for _ in range(runs if arrivals == "poisson" else 1)]  # paced: every run is the same
    ratios = [p99 / (2 * p50 + 5.0) for p50, p99 in samples]
    long_p50, long_p99 = one(count * 100, rng)
    spread = lambda v: [float(np.percentile(v, q)) for q in (50, 10, 90)]  # noqa: E731
    return {"arrivals": arrivals, "rate": rate, "per_image_outside_ms": per_image * 1000,
            "batch_ms": [t * 1000 for t in batch_s], "p50_ms": spread([p for p, _ in samples]),
            "p99_ms": spread([p for _, p in samples]), "ratio": spread(ratios),
            "long_run": {"p50_ms": long_p50, "p99_ms": long_p99, "ratio": long_p99 / (2 * long_p50 + 5.0)}}


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
    records (session 7's httpx client was late by up to 464 ms under 2x overload)."""
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


def half_and_overload(port: int, url: str, images: list[bytes], saturated: float, batch_s: list[float],
                      args: argparse.Namespace) -> tuple[dict[str, object], dict[str, object]]:
    """Half load (Poisson arrivals, then the same rate paced, each beside the queue model's
    prediction), then 2x overload (Poisson), each beside the server's own histograms for the
    same interval: its 200s at half load; its 429s and its loop's lag under overload."""
    duration, lag = "effnet_request_duration_seconds", "effnet_event_loop_lag_seconds"
    before = server_buckets(port, duration, "200")
    half = open_loop_prioritised(url, images, saturated / 2, args.seconds, args.client_nice)
    half["server_200"] = server_quantiles(before, server_buckets(port, duration, "200"))
    paced = open_loop_prioritised(url, images, saturated / 2, args.seconds, args.client_nice, arrivals="paced")
    half["paced"] = {k: paced[k] for k in ("p50_ms", "p99_ms", "max_ms", "codes", "client_loop_lag")}
    half["model"] = {arrivals: ideal_batcher(batch_s, saturated, saturated / 2, args.seconds, arrivals=arrivals)
                     for arrivals in ("poisson", "paced")}
    before, lagged = server_buckets(port, duration, "429"), server_buckets(port, lag)
    over = open_loop_prioritised(url, images, saturated * 2, 10.0, args.client_nice)
    over["server_429"] = server_quantiles(before, server_buckets(port, duration, "429"))
    over["server_loop_lag"] = server_quantiles(lagged, server_buckets(port, lag))
    return half, over


def open_loop_prioritised(url: str, images: list[bytes], rate: float, seconds: float, nice: int,
                          arrivals: str = "poisson") -> dict[str, object]:
    with client_priority(nice) as ran_at:
        return {**asyncio.run(open_loop(url, images, rate, seconds, arrivals=arrivals)), "client_nice": ran_at}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--memory-requests", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--overload-only", action="store_true",
                        help="only saturation at concurrency 32 and the 2x overload (about a minute), printed")
    parser.add_argument("--client-nice", type=int, default=0,
                        help="niceness of the open-loop client (default 0, the server's; -10 puts it ahead)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    images = photos(64)
    batch_s = batch_seconds_apart(8)   # before any server starts: the runtime alone on the cores
    result: dict[str, object] = {"machine": {"cpu": cpu_peak(2), "platform": platform.platform(), "cores": os.cpu_count()},
                                 "model": MODEL, "weights": "lite0.official", "runtime": "onnx", "threads": 2,
                                 "batch_ms": [t * 1000 for t in batch_s]}
    if not args.overload_only:
        result["offline"] = off = offline_apart([images[1]] * 64)  # the JPEG the servers get
        print("offline", off, flush=True)
    effnet_cmd = [sys.executable, "-m", "effnet", "serve", "--model", MODEL, "--weights", "lite0.official",
                  "--runtime", "onnx", "--threads", "2"]
    url = f"http://127.0.0.1:8011/v2/models/{MODEL}/classify"

    body = Path(tempfile.mkdtemp()) / "upload.jpg"
    body.write_bytes(images[1])
    n = lambda rate, seconds: max(1, int(rate * seconds))  # noqa: E731
    server = Server([*effnet_cmd, "--port", "8011", "--max-batch", "8"], 8011)
    ours: dict[str, object] = {}
    if args.overload_only:
        return overload_only(server, url, body, images, batch_s, args)
    try:
        hey(url, body, requests=100, concurrency=4)                             # warm-up
        ours["c1"] = hey(url, body, requests=300, concurrency=1)
        guess = 60.0
        for c in (8, 32):
            ours[f"c{c}"] = hey(url, body, requests=n(guess, args.seconds), concurrency=c)
            guess = float(ours[f"c{c}"]["img_per_s"])  # type: ignore[arg-type]
        saturated = float(ours["c32"]["img_per_s"])  # type: ignore[arg-type]
        ours["half_load"], ours["overload_2x"] = half_and_overload(server.port, url, images, saturated, batch_s, args)
        for name in ("c1", "c8", "c32", "half_load", "overload_2x"):
            print(name, ours[name], flush=True)
        served = sum(int(v["requests"]) for v in ours.values()) + 100  # type: ignore[index]
        if served < 1000:
            hey(url, body, requests=1000 - served, concurrency=8)
        memory = {"after_1000_mb": server.rss_mb()}
        hey(url, body, requests=args.memory_requests - max(served, 1000), concurrency=8)
        memory["after_10000_mb"] = server.rss_mb()
        memory["ratio"] = memory["after_10000_mb"] / memory["after_1000_mb"]
        ours["memory"] = memory
        print("memory", memory, flush=True)
    finally:
        server.stop()
    server = Server([*effnet_cmd, "--port", "8012", "--max-batch", "1"], 8012)
    try:
        url1 = f"http://127.0.0.1:8012/v2/models/{MODEL}/classify"
        hey(url1, body, requests=50, concurrency=4)
        ours["no_batching_c32"] = hey(url1, body, requests=n(saturated, args.seconds), concurrency=32)
        print("no batching", ours["no_batching_c32"], flush=True)
    finally:
        server.stop()
    result["effnet_serve"] = ours
    peer = PeerServer([sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "serve_peer_timm:app", "--port", "8013",
                       "--log-level", "warning"], 8013)
    try:
        url2 = "http://127.0.0.1:8013/classify"
        hey(url2, body, requests=50, concurrency=4)
        result["fastapi_timm_eager"] = {"c1": hey(url2, body, requests=200, concurrency=1),
                                        "c32": hey(url2, body, requests=n(15, args.seconds), concurrency=32)}
        print("peer", result["fastapi_timm_eager"], flush=True)
    finally:
        peer.stop()
    result["checks"] = checks(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_cpu.json").write_text(json.dumps(result, indent=2))
    (args.out / "serve_cpu.md").write_text(to_markdown(result))
    print(to_markdown(result))


def overload_only(server: Server, url: str, body: Path, images: list[bytes], batch_s: list[float],
                  args: argparse.Namespace) -> None:
    """Saturation, then 2x overload: the quick loop for work on the overload path."""
    try:
        hey(url, body, requests=100, concurrency=4)
        saturated = float(hey(url, body, requests=600, concurrency=32)["img_per_s"])  # type: ignore[arg-type]
        half, over = half_and_overload(server.port, url, images, saturated, batch_s, args)
    finally:
        server.stop()
    print(f"runtime alone, batch 1..8: {', '.join(f'{t * 1000:.1f}' for t in batch_s)} ms", flush=True)
    print(f"half load: p50 {half['p50_ms']:.1f}, p99 {half['p99_ms']:.1f} ms; inside the app {half['server_200']}; "
          f"client loop lag {half['client_loop_lag']}; paced: {half['paced']}; model: {half['model']}", flush=True)
    print(f"saturated {saturated:.1f} img/s; 2x overload: codes {over['codes']}, elapsed {over['elapsed']:.1f} s, "
          f"429 p50 {over['rejected_429']['p50_ms']:.1f} / p99 {over['rejected_429']['p99_ms']:.1f} / max "
          f"{over['rejected_429']['max_ms']:.1f} ms (slower than 20 ms: {over['slow_429']}); "
          f"accepted p50 {over['p50_ms']:.0f} / p99 {over['p99_ms']:.0f} ms; "
          f"inside the app: {over['server_429']}, loop lag {over['server_loop_lag']}; client loop lag "
          f"{over['client_loop_lag']}")


def checks(r: dict) -> dict[str, object]:  # type: ignore[type-arg]
    ours, off, peer = r["effnet_serve"], r["offline"], r["fastapi_timm_eager"]
    half, over = ours["half_load"], ours["overload_2x"]
    return {
        "saturated_vs_offline_batch8": ours["c32"]["img_per_s"] / off["batch8_img_per_s"],
        "batching_on_vs_off_c32": ours["c32"]["img_per_s"] / ours["no_batching_c32"]["img_per_s"],
        "added_latency_c1_p50_ms": ours["c1"]["p50_ms"] - off["batch1_p50_ms"],
        "half_load_p99_over_2p50_plus_delay": half["p99_ms"] / (2 * half["p50_ms"] + 5.0),
        "half_load_paced_p99_over_2p50_plus_delay": half["paced"]["p99_ms"] / (2 * half["paced"]["p50_ms"] + 5.0),
        "half_load_model_ratio": {k: v["ratio"] for k, v in half["model"].items()},
        "overload_codes": over["codes"],
        "overload_lost": over["lost"],
        "overload_429_max_ms": over["rejected_429"]["max_ms"],
        "overload_429_p99_ms": over["rejected_429"]["p99_ms"],
        "overload_429_p50_ms": over["rejected_429"]["p50_ms"],
        "memory_10000_over_1000": ours["memory"]["ratio"],
        "vs_fastapi_timm_c32_throughput": ours["c32"]["img_per_s"] / peer["c32"]["img_per_s"],
        "vs_fastapi_timm_c1_p50": ours["c1"]["p50_ms"] / peer["c1"]["p50_ms"],
    }


def to_markdown(r: dict) -> str:  # type: ignore[type-arg]
    ours, off, peer, c = r["effnet_serve"], r["offline"], r["fastapi_timm_eager"], r["checks"]
    lines = [f"# effnet serve under load: {r['model']} ({r['weights']}), 224 px, {r['runtime']}, {r['threads']} threads",
             "", f"CPU: {r['machine']['cpu']['processor']}, {r['machine']['cores']} cores, "
             f"AVX-512 VNNI: {r['machine']['cpu']['avx512_vnni']}. Client and server share the cores; the open-loop "
             f"client ran at nice {ours['overload_2x'].get('client_nice', 0)} (the server at 0, its inference "
             "threads at +15).", "",
             "| path | concurrency | img/s | p50 ms | p99 ms | codes |", "|---|---|---|---|---|---|",
             f"| offline `effnet predict`, batch 8 | - | {off['batch8_img_per_s']:.1f} | | | |",
             f"| offline `effnet predict`, batch 1 | 1 | | {off['batch1_p50_ms']:.1f} | | |"]
    for key, label in (("c1", "effnet serve"), ("c8", "effnet serve"), ("c32", "effnet serve"),
                       ("no_batching_c32", "effnet serve --max-batch 1")):
        row = ours[key]
        lines.append(f"| {label} | {row['concurrency']} | {row['img_per_s']:.1f} | {row['p50_ms']:.1f} | "
                     f"{row['p99_ms']:.1f} | {row['codes']} |")
    for key in ("c1", "c32"):
        row = peer[key]
        lines.append(f"| FastAPI + timm eager per request | {row['concurrency']} | {row['img_per_s']:.1f} | "
                     f"{row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['codes']} |")
    half, over = ours["half_load"], ours["overload_2x"]
    lines += ["", f"Half load ({half['rate']:.1f} req/s, Poisson arrivals, {half['seconds']:.0f} s): "
              f"p50 {half['p50_ms']:.1f} ms, p99 {half['p99_ms']:.1f} ms, codes {half['codes']}; inside the app p50 <= "
              f"{half['server_200']['p50_bound_ms']:g}, p99 <= {half['server_200']['p99_bound_ms']:g} ms; the client's "
              f"loop late by p99 {half['client_loop_lag']['p99_ms']:.1f} ms. The same rate paced (equal gaps): p50 "
              f"{half['paced']['p50_ms']:.1f}, p99 {half['paced']['p99_ms']:.1f} ms, codes {half['paced']['codes']}.",
              "", "The queue model (`ideal_batcher`: a perfect batching server, no client, no noise; runtime alone "
              f"for batch 1..8: {', '.join(f'{t:.1f}' for t in r['batch_ms'])} ms, plus "
              f"{half['model']['poisson']['per_image_outside_ms']:.1f} ms a image outside it, from the saturated "
              "throughput), over 200 runs as long as the measurement (median, 10th-90th percentile):", "",
              "| arrivals | p50 ms | p99 ms | p99 / (2 p50 + 5 ms) | one run 100x as long |", "|---|---|---|---|---|",
              *(f"| {k} | {m['p50_ms'][0]:.1f} ({m['p50_ms'][1]:.1f}-{m['p50_ms'][2]:.1f}) | {m['p99_ms'][0]:.1f} "
                f"({m['p99_ms'][1]:.1f}-{m['p99_ms'][2]:.1f}) | {m['ratio'][0]:.2f} ({m['ratio'][1]:.2f}-{m['ratio'][2]:.2f}) "
                f"| {m['long_run']['ratio']:.2f} |" for k, m in half["model"].items()), "",
              f"2x overload ({over['rate']:.1f} req/s, Poisson arrivals, {over['seconds']:.0f} s): codes {over['codes']}, "
              f"{over['lost']} without an answer; 429 answered in p50 {over['rejected_429']['p50_ms']:.1f} / p99 "
              f"{over['rejected_429']['p99_ms']:.1f} / max {over['rejected_429']['max_ms']:.1f} ms; accepted p50 "
              f"{over['p50_ms']:.0f} / p99 {over['p99_ms']:.0f} ms. Inside the app (its own histogram, from the "
              f"ASGI call to the response): {over['server_429']['within_20ms']:.1%} of the 429s within 20 ms, "
              f"p99 <= {over['server_429']['p99_bound_ms']:g} ms; the server's event loop woke late by p99 <= "
              f"{over['server_loop_lag']['p99_bound_ms']:g} ms; the client's own loop by p50 "
              f"{over['client_loop_lag']['p50_ms']:.1f} / p99 {over['client_loop_lag']['p99_ms']:.1f} / max "
              f"{over['client_loop_lag']['max_ms']:.0f} ms.",
              f"Server memory: {ours['memory']['after_1000_mb']:.0f} MB after 1,000 requests, "
              f"{ours['memory']['after_10000_mb']:.0f} MB after 10,000 (x{ours['memory']['ratio']:.3f}).", "",
              "| check | goal | measured |", "|---|---|---|",
              f"| saturated (c32) / offline batch 8 | >= 0.85 | {c['saturated_vs_offline_batch8']:.2f} |",
              f"| batching on / off at c32 | >= 1.2 | {c['batching_on_vs_off_c32']:.2f} |",
              f"| added p50 latency at c1 over offline batch 1 | <= 5 ms | {c['added_latency_c1_p50_ms']:.1f} ms |",
              f"| half-load p99 / (2 p50 + 5 ms), Poisson arrivals | <= 1 | {c['half_load_p99_over_2p50_plus_delay']:.2f} "
              f"(queue model: {c['half_load_model_ratio']['poisson'][0]:.2f}) |",
              f"| the same, paced arrivals | <= 1 | {c['half_load_paced_p99_over_2p50_plus_delay']:.2f} "
              f"(queue model: {c['half_load_model_ratio']['paced'][0]:.2f}) |",
              f"| 2x overload: codes, unanswered | 200/429 only, 0 | {c['overload_codes']}, {c['overload_lost']} |",
              f"| 2x overload: every 429 | < 20 ms | p50 {c['overload_429_p50_ms']:.1f}, p99 {c['overload_429_p99_ms']:.1f}, "
              f"max {c['overload_429_max_ms']:.1f} ms |",
              f"| memory after 10,000 / after 1,000 | <= 1.10 | {c['memory_10000_over_1000']:.3f} |",
              f"| throughput at c32 vs FastAPI + timm eager | | {c['vs_fastapi_timm_c32_throughput']:.2f}x |",
              f"| p50 at c1 vs FastAPI + timm eager | | {c['vs_fastapi_timm_c1_p50']:.2f}x |", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
