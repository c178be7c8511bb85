"""`effnet bench`: our inference and training paths against timm and torchvision, run
alternately in one process; JSON and a markdown table."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..bench import INFERENCE_PATHS, PEER_PATHS, PEER_TRAIN_PATHS, TRAIN_PATHS, Setting, run_bench, to_markdown
from ..data.transforms import input_size
from ..zoo import get_spec
from ._model import WEIGHTS_HELP, load_model, positive_int


def _native_resolution(model: str | None, weights: str | None) -> int:
    if weights is None:
        return get_spec(model).resolution  # type: ignore[arg-type]
    return input_size(load_model(model, weights))


def _list(value: str) -> list[str]:
    return [item for item in value.split(",") if item]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="latency, throughput, training speed and memory against timm/torchvision")
    p.add_argument("model", nargs="?", default=None,
                   help="a registered model (default: efficientnet_b0, or the network --weights carries)")
    p.add_argument("--weights", default=None, help=WEIGHTS_HELP.replace("useful for testing only", "speed does not "
                                                                        "depend on them"))
    p.add_argument("--resolution", type=positive_int, default=None,
                   help="image size (default: the model's own resolution)")
    p.add_argument("--threads", type=int, default=2, help="torch and onnxruntime intra-op threads (same for all)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cuda: every contestant on the GPU in bf16 autocast; the onnxruntime "
                        "paths (CPU-only here) are left out")
    p.add_argument("--peers", type=_list, default=None,
                   help="comma-separated, e.g. 'timm:tf_efficientnet_b0,torchvision:efficientnet_b0' "
                        "(default: the same architecture in timm and torchvision; '' for none)")
    p.add_argument("--inference", type=_list, default=["eager", "channels_last", "fused", "onnx-fp32", "onnx-int8"],
                   help=f"our inference paths, comma-separated from {','.join(INFERENCE_PATHS)} ('all' for every one)")
    p.add_argument("--peer-paths", type=_list, default=["eager", "channels_last"],
                   help=f"each peer's inference paths, comma-separated from {','.join(PEER_PATHS)} (default "
                        "eager,channels_last; 'all' for every one: best against best)")
    p.add_argument("--peer-training", type=_list, default=["channels_last"],
                   help=f"each peer's training paths from {','.join(PEER_TRAIN_PATHS)} (default channels_last)")
    p.add_argument("--training", type=_list, default=list(TRAIN_PATHS),
                   help=f"our training paths from {','.join(TRAIN_PATHS)} ('' for no training section)")
    p.add_argument("--latency-batch", type=int, default=1)
    p.add_argument("--throughput-batch", type=int, default=32)
    p.add_argument("--train-batch", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds; each number is the median")
    p.add_argument("--min-time", type=float, default=1.0, help="seconds per contestant per round")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--profile", action="store_true", help="add torch.profiler's top ops for our fused path")
    p.add_argument("--json", metavar="PATH", help="write the full report as JSON here")
    p.add_argument("--markdown", metavar="PATH", help="write the markdown tables here (they are printed too)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = args.model or (None if args.weights else "efficientnet_b0")
    if model is not None:
        get_spec(model)  # an unknown name fails here, with suggestions, before any work
    inference = list(INFERENCE_PATHS) if args.inference == ["all"] else args.inference
    peer_paths = list(PEER_PATHS) if args.peer_paths == ["all"] else args.peer_paths
    unknown = ([p for p in inference if p not in INFERENCE_PATHS] + [p for p in args.training if p not in TRAIN_PATHS]
               + [p for p in peer_paths if p not in PEER_PATHS] + [p for p in args.peer_training if p not in PEER_TRAIN_PATHS])
    if unknown:
        raise ValueError(f"unknown path(s) {unknown}; inference paths: {', '.join(INFERENCE_PATHS)}; "
                         f"training paths: {', '.join(TRAIN_PATHS)}; peer paths: {', '.join(PEER_PATHS)}; "
                         f"peer training paths: {', '.join(PEER_TRAIN_PATHS)}")
    setting = Setting(model, args.weights, args.resolution or _native_resolution(model, args.weights), args.threads,
                      device=args.device)
    try:
        report = run_bench(setting, peers=args.peers, inference=inference, training=args.training,
                           peer_paths=peer_paths, peer_training=args.peer_training,
                           latency_batch=args.latency_batch, throughput_batch=args.throughput_batch,
                           train_batch=args.train_batch, rounds=args.rounds, min_time=args.min_time,
                           memory=not args.no_memory, profile=args.profile,
                           log=lambda message: print(f"[bench] {message}", file=sys.stderr, flush=True))
    except ImportError as error:  # a peer library or onnxruntime is missing: say which, no traceback
        raise ValueError(str(error)) from error
    markdown = to_markdown(report)
    print(markdown)
    if report.profile:
        print(report.profile)
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown + (f"\n```\n{report.profile}```\n" if report.profile else ""))
    return 0
