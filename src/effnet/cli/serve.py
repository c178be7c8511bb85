"""`effnet serve --weights W`: an inference server (KServe V2 protocol, /classify, /metrics,
a page at /) with dynamic batching, on uvicorn or on Ray Serve replicas (docs/serve.md)."""

from __future__ import annotations

import argparse

from ..deploy.runtime_choice import RUNTIMES
from ..optimize import deployed_model
from ..serve.local import serve_local
from ..serve.ray_backend import serve_ray
from ..serve.service import Service
from ..serve.settings import ServeSettings
from ._model import add_model_arguments, load_model, positive_int

def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="serve a model over HTTP (KServe V2, /classify, /metrics, a page)")
    add_model_arguments(p)
    p.add_argument("--name", default=None, help="the model's name in URLs (default: its network's name)")
    p.add_argument("--runtime", choices=RUNTIMES, default="auto",
                   help="auto (default): the fastest installed fp32 runtime measured at --max-batch, as `effnet predict` "
                        "(onnx, openvino, executorch, torch; openvino-bf16 and executorch-int8 on request)")
    p.add_argument("--accuracy-budget", type=float, default=None, metavar="POINTS",
                   help="with --runtime auto: int8 and bf16 forms compete too; the fastest at --max-batch within "
                        "POINTS of fp32's top-1 serves (as `effnet optimize`; local backend)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--max-batch", type=positive_int, default=8, help="images per inference batch (default 8)")
    p.add_argument("--max-delay-ms", type=float, default=5.0,
                   help="how long a batch waits for requests still being decoded (default 5 ms)")
    p.add_argument("--max-queue", type=positive_int, default=64,
                   help="images admitted at once; past it requests get 429 (default 64)")
    p.add_argument("--timeout-s", type=float, default=10.0, help="request deadline: 504 past it (default 10 s)")
    p.add_argument("--max-body-mb", type=float, default=8.0, help="largest request body: 413 past it (default 8 MB)")
    p.add_argument("--threads", type=int, default=0, help="runtime threads (default: every core)")
    p.add_argument("--workers", type=positive_int, default=1, help="server processes (local backend: 1)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local (default): uvicorn in this process; ray: Ray Serve replicas")
    p.add_argument("--replicas", type=positive_int, default=1, help="Ray Serve replicas (default 1)")
    p.add_argument("--max-replicas", type=int, default=0,
                   help="with --backend ray: autoscale between --replicas and this many on queue length")
    p.add_argument("--ray-address", default=None, help="join a Ray cluster ('auto' or ray://host:port)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = ServeSettings(max_batch=args.max_batch, max_delay_ms=args.max_delay_ms, max_queue=args.max_queue,
                             timeout_s=args.timeout_s, max_body_mb=args.max_body_mb, runtime=args.runtime,
                             device=args.device, threads=args.threads)
    # Load here in both cases: a wrong model or weights is a one-line error before any server starts.
    model = load_model(args.model, args.weights)
    cache = args.weights is not None
    if args.backend == "ray":
        if args.accuracy_budget is not None:
            raise ValueError("--accuracy-budget is for the local backend; Ray Serve replicas take --runtime "
                             "(torch, onnx, openvino, openvino-bf16, executorch, executorch-int8)")
        return serve_ray(args.model, args.weights, settings, name=args.name, host=args.host, port=args.port,
                         replicas=args.replicas, max_replicas=args.max_replicas, address=args.ray_address, cache=cache,
                         log=lambda line: print(f"effnet serve: {line}", flush=True),
                         on_ready=lambda: print(f"effnet serve: {args.replicas} Ray Serve replicas on "
                                                f"http://{args.host}:{args.port}", flush=True))
    if args.accuracy_budget is not None:
        if args.runtime != "auto" or args.device not in (None, "cpu"):
            raise ValueError("--accuracy-budget chooses among CPU runtimes: use it with --runtime auto on the CPU")
        model = deployed_model(model, args.weights, budget=args.accuracy_budget, batch=args.max_batch,
                               threads=args.threads or None, log=lambda line: print(f"effnet serve: {line}", flush=True))
    service = Service(model, settings, name=args.name, weights=args.weights, cache=cache)
    if service.engine is not None and service.engine.choice is not None:
        print(f"effnet serve: {service.engine.choice.describe()}", flush=True)
    print(f"effnet serve: {service.name} ({args.weights or 'random weights'}) on {service.runtime}, "
          f"{service.threads} threads, batches up to {settings.max_batch}", flush=True)
    return serve_local(service, host=args.host, port=args.port, workers=args.workers,
                       on_ready=lambda server: print(f"effnet serve: ready on http://{args.host}:{args.port} "
                                                     f"(models: /v2/models/{service.name})", flush=True))
