"""`effnet serve` under load on this machine: loopback, Lite0 (official weights) at 224 px,
onnxruntime, 2 threads. Closed-loop load comes from hey (Debian's Go load generator, one
320 x 240 JPEG of a real photo per request); open-loop load (Poisson or paced arrivals, for half
load and overload) from an aiohttp client in this process. Both share the two cores with the
server, as any load generator on one machine must. ``--client-nice -10`` runs the open-loop
client ahead of the server (where the OS allows it): a check on whether the client's own lag
is what the overload latencies record (with an httpx client it was not; that client took the
CPU the server's loop needs).

    .venv/bin/python benchmarks/bench_serve.py [--seconds 15] [--out benchmarks/results]

Measured, in one run: offline `effnet predict` (same runtime, batch 1 and 8) on JPEGs like
it; the server at concurrency 1, 8 and 32 (throughput, p50, p99); half load; dynamic
batching off (--max-batch 1); 2x overload for 10 s (codes, 429 latency, unanswered
requests); server memory after 1,000 and 10,000 requests; and a FastAPI endpoint running
timm eager per request (serve_peer_timm.py) at concurrency 1 and 32. Writes
``benchmarks/results/serve_cpu/`` (through ``effnet.bench.results``); ``--overload-only``
only prints. The load generators are in serve_load.py, the queue model in
serve_queue_model.py, the checks and the markdown in serve_report.py.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import multiprocessing
import os
import platform
import random
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import effnet
from effnet.bench.report import cpu_peak
from effnet.bench.results import write_result
from effnet.deploy.runtime_choice import runtime_model
from effnet.deploy.timing import call_times, seconds_per_call
from effnet.predict import iter_predictions
from serve_load import PeerServer, Server, client_priority, hey, open_loop, server_buckets, server_quantiles
from serve_queue_model import ideal_batcher
from serve_report import checks, to_markdown

HERE = Path(__file__).resolve().parent
MODEL = "efficientnet_lite0"
EFFNET_SERVE = [sys.executable, "-m", "effnet", "serve", "--model", MODEL, "--weights", "lite0.official",
                "--runtime", "onnx", "--threads", "2"]


def requests_for(rate: float, seconds: float) -> int:
    return max(1, int(rate * seconds))


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



def offline(images: list[bytes], folder: Path) -> dict[str, float]:
    """`effnet predict` on the same JPEGs from disk, onnxruntime, batch 8 and batch 1."""
    torch.set_num_threads(2)
    paths = []
    for i, data in enumerate(images):
        (folder / f"{i:03d}.jpg").write_bytes(data)
        paths.append(folder / f"{i:03d}.jpg")
    model = runtime_model(effnet.create_model(MODEL, weights="lite0.official"), "onnx", threads=2)
    list(iter_predictions(paths[:16], model, batch_size=8))                 # warm-up
    rates = [len(paths) / t for t in call_times(lambda: list(iter_predictions(paths, model, batch_size=8)), calls=3)]
    one_by_one = iter(paths[:100])
    single = call_times(lambda: list(iter_predictions([next(one_by_one)], model, batch_size=1, num_workers=1)),
                        calls=len(paths[:100]))
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
            times.append(seconds_per_call(lambda x=x: model(x), calls=15, warmup=3))
    return times



def batch_seconds_apart(max_batch: int) -> list[float]:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(batch_seconds, max_batch).result()



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



def batching_server(body: Path, images: list[bytes], batch_s: list[float], args: argparse.Namespace) -> dict[str, object]:
    """`effnet serve --max-batch 8`: concurrency 1, 8 and 32, half load and 2x overload, then
    memory after 1,000 and 10,000 requests."""
    server = Server([*EFFNET_SERVE, "--port", "8011", "--max-batch", "8"], 8011)
    url = f"http://127.0.0.1:8011/v2/models/{MODEL}/classify"
    ours: dict[str, object] = {}
    try:
        hey(url, body, requests=100, concurrency=4)                             # warm-up
        ours["c1"] = hey(url, body, requests=300, concurrency=1)
        guess = 60.0
        for c in (8, 32):
            ours[f"c{c}"] = hey(url, body, requests=requests_for(guess, args.seconds), concurrency=c)
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
    return ours


def no_batching(body: Path, saturated: float, seconds: float) -> dict[str, object]:
    """`effnet serve --max-batch 1` at concurrency 32."""
    server = Server([*EFFNET_SERVE, "--port", "8012", "--max-batch", "1"], 8012)
    try:
        url1 = f"http://127.0.0.1:8012/v2/models/{MODEL}/classify"
        hey(url1, body, requests=50, concurrency=4)
        result = hey(url1, body, requests=requests_for(saturated, seconds), concurrency=32)
        print("no batching", result, flush=True)
    finally:
        server.stop()
    return result


def fastapi_timm(body: Path, seconds: float) -> dict[str, object]:
    """What a user would write instead: serve_peer_timm.py, at concurrency 1 and 32."""
    peer = PeerServer([sys.executable, "-m", "uvicorn", "--app-dir", str(HERE), "serve_peer_timm:app", "--port", "8013",
                       "--log-level", "warning"], 8013)
    try:
        url2 = "http://127.0.0.1:8013/classify"
        hey(url2, body, requests=50, concurrency=4)
        result = {"c1": hey(url2, body, requests=200, concurrency=1),
                  "c32": hey(url2, body, requests=requests_for(15, seconds), concurrency=32)}
        print("peer", result, flush=True)
    finally:
        peer.stop()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--memory-requests", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=HERE / "results", help="results folder (default: benchmarks/results)")
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
    body = Path(tempfile.mkdtemp()) / "upload.jpg"
    body.write_bytes(images[1])
    if args.overload_only:
        server = Server([*EFFNET_SERVE, "--port", "8011", "--max-batch", "8"], 8011)
        return overload_only(server, f"http://127.0.0.1:8011/v2/models/{MODEL}/classify", body, images, batch_s, args)
    ours = batching_server(body, images, batch_s, args)
    ours["no_batching_c32"] = no_batching(body, float(ours["c32"]["img_per_s"]), args.seconds)  # type: ignore[index]
    result["effnet_serve"] = ours
    result["fastapi_timm_eager"] = fastapi_timm(body, args.seconds)
    result["checks"] = checks(result)
    markdown = to_markdown(result)
    print(markdown)
    print(f"written: {write_result('serve_cpu', result, markdown, root=args.out, threads=2)}", file=sys.stderr)


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


if __name__ == "__main__":
    main()
