"""int8 static quantisation (onnxruntime's QDQ quantiser, and NNCF for OpenVINO) and bf16 of a
network trained on Fashion-MNIST: top-1 on the 10,000 test images before and after, and the
speed of each path, all from the same model.

    .venv/bin/python benchmarks/bench_int8_fmnist.py runs/bench-fmnist-60 [--calibration 512]
    nice -n 10 .venv/bin/python benchmarks/bench_int8_fmnist.py --ptq [--seeds 3]

``--ptq`` (accuracy only): trains (or finds under ``--runs``) ``fmnist_lab`` (B0's blocks: SiLU,
squeeze-and-excitation) and ``fmnist_lab_lite`` (the same with ReLU6 and no SE, as
EfficientNet-Lite changes B0) at 16 px, 8 epochs, one run per seed, then reports test top-1 of
fp32 and of every int8 choice of ``int8_ptq_study``: each calibration of onnxruntime and NNCF,
and the best one with the layer groups a sensitivity analysis keeps in fp32. Calibration: 512
minival images; choices and groups picked on 1,000 other minival images; the test set only
reports. Each run's rows are kept in its folder, so a cut benchmark continues with what it
lacks and networks can run in separate processes. Writes ``benchmarks/results/int8_ptq_fmnist/``.

The model is a training run folder (its ``model.safetensors``: the best minival epoch, EMA
weights), that file or the run's ``last.pt``, for example the run
``benchmarks/train_fashion_mnist.py`` leaves. The fp32 model is exported with BN
folded and fixed SAME pads, then quantised with calibration images held out from the
*training* set (never the test set). Top-1 is measured for eager PyTorch, fp32 ONNX and int8
ONNX on the whole test set; speed alternates the three (plus timm's eager model of the same
architecture, random weights) at batch 1 and batch 256. Writes ``benchmarks/results/int8_fmnist/``
(through ``effnet.bench.results``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from effnet import create_model
from effnet.atomic import write_atomic
from effnet.bench import time_alternately
from effnet.bench.contestants import onnx_file_runner
from effnet.bench.peer_models import timm_same_architecture
from effnet.bench.results import write_result
from effnet.deploy.export import export_model, max_abs_diff
from effnet.deploy.fuse import optimize_for_inference
from effnet.preprocessing import Preprocessing
from effnet.deploy.runtime import OnnxRunner
from effnet.train.config_files import config_of_run, load_config
from effnet.train.data import build_eval_loader
from effnet.train.loop import train
from effnet.weights import fetch_weights
from effnet.zoo import get_spec
from int8_ptq_study import ptq_study

REPO = Path(__file__).resolve().parent.parent


def images_and_labels(config, split: str, pre: Preprocessing) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    loader, _ = build_eval_loader(config, split, pre)
    xs, ys = [], []
    for images, labels in loader:  # normalised, as the model sees them
        xs.append(images.float().numpy())
        ys.append(labels.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    return float(100.0 * (logits.argmax(1) == labels).mean())


def batched(run, images: np.ndarray, batch: int = 500) -> np.ndarray:  # type: ignore[no-untyped-def]
    return np.concatenate([run(images[i:i + batch]) for i in range(0, len(images), batch)])


def time_paths(model, runners, test_x: np.ndarray) -> dict[int, dict[str, dict[str, float]]]:  # type: ignore[no-untyped-def]
    """Every runtime path beside our fused eager model and timm's same architecture, alternately,
    at batch 1 and 256: ms per batch, images/s and the ratio to timm eager."""
    fused = optimize_for_inference(model)
    theirs = timm_same_architecture(model.spec).eval().to(memory_format=torch.channels_last)
    speed = {}
    for batch in (1, 256):
        x = np.ascontiguousarray(test_x[:batch])
        x_nhwc = torch.from_numpy(x).contiguous(memory_format=torch.channels_last)

        def eager(m, x=x_nhwc):  # type: ignore[no-untyped-def]
            with torch.inference_mode():
                return m(x)

        timed = {name: (lambda run=run, x=x: run(x)) for name, run in runners.items()}
        samples = time_alternately({**timed, "ours:fused-nhwc": lambda: eager(fused),
                                    "timm:eager-nhwc": lambda: eager(theirs)}, rounds=3, min_time=2.0)
        medians = {name: statistics.median(v) for name, v in samples.items()}
        speed[batch] = {name: {"ms": 1000 * s, "images_per_s": batch / s,
                               "vs_timm_eager": medians["timm:eager-nhwc"] / s} for name, s in medians.items()}
    return speed


def lite_style(name: str):  # type: ignore[no-untyped-def]
    """EfficientNet-Lite's changes (zoo/efficientnet.py) on a small network: no SE, ReLU6."""
    base = get_spec(name.removesuffix("_lite"))
    stages = tuple(dataclasses.replace(s, se_ratio=0.0) for s in base.stages)
    return base.replace(name=name, stages=stages, activation="relu6")


def trained_run(name: str, seed: int, runs: Path) -> Path:
    """The run folder of ``name`` trained with ``seed``, trained first if it is not there."""
    run = runs / name / f"seed{seed}"
    if not (run / "model.safetensors").is_file():
        config = load_config(REPO / "configs" / "fashion_mnist_small.yaml", [
            f"model.name={name.removesuffix('_lite')}", "data.image_size=16", "train.epochs=8", "train.ema_decay=0",
            "train.eval_raw=true", f"train.seed={seed}", "train.threads=1", f"run.out_dir={runs / name}",
            f"run.name=seed{seed}", "run.progress=false", "run.tensorboard=false"])
        train(config, spec=lite_style(name) if name.endswith("_lite") else None)
    return run


def ptq_run(run: Path, args: argparse.Namespace) -> list[dict[str, object]]:
    """fp32 and every int8 choice of one run: test top-1 and agreement with fp32 on the test set."""
    model = create_model(None, weights=run).eval()
    config = config_of_run(run)
    test_x, test_y = images_and_labels(config, "test", model.preprocessing)
    minival, _ = images_and_labels(config, "minival", model.preprocessing)
    calibration, check = minival[:args.calibration], minival[args.calibration:args.calibration + 1000]
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = Path(tmp) / "fp32.onnx"
        export_model(model, fp32_path, resolution=test_x.shape[-1])
        fp32 = batched(OnnxRunner(fp32_path, threads=args.threads), test_x)

        def evaluate(run):  # type: ignore[no-untyped-def]
            logits = batched(run, test_x)
            return {"test_top1": top1(logits, test_y),
                    "test_agreement": float(100.0 * (logits.argmax(1) == fp32.argmax(1)).mean())}

        rows = ptq_study(fp32_path, calibration, check, evaluate, Path(tmp), budget=args.budget,
                         log=lambda line: print(line, file=sys.stderr, flush=True))
    return [{"runtime": "onnx", "choice": "fp32", "test_top1": top1(fp32, test_y), "test_agreement": 100.0}, *rows]


def ptq(args: argparse.Namespace) -> int:
    results = []
    for seed in range(args.seeds):
        for name in args.networks:
            run = trained_run(name, seed, args.runs)
            journal = run / f"int8_ptq_c{args.calibration}_b{args.budget:g}.json"  # one run's rows, kept
            if not journal.is_file():
                write_atomic(journal, json.dumps(ptq_run(run, args), default=list) + "\n")
            rows = json.loads(journal.read_text())
            results += [{"network": name, "seed": seed, "run": str(run), **row} for row in rows]
    lines = [f"Fashion-MNIST at 16 px, 8 epochs from scratch; test top-1 (10,000 images) of fp32 and int8; int8 "
             f"calibrated on {args.calibration} minival images, choices and fp32 groups picked on 1,000 other "
             f"minival images (budget: {args.budget:.0%} of them may change class); {args.seeds} seed(s).", "",
             "| network | seed | runtime | int8 choice | test top-1 | - fp32 | agrees with fp32 |", "|---|---|---|---|---|---|---|"]
    for r in results:
        fp32 = next(x["test_top1"] for x in results if x["run"] == r["run"] and x["choice"] == "fp32")
        lines.append(f"| {r['network']} | {r['seed']} | {r['runtime']} | {r['choice']} | {r['test_top1']:.2f}% | "
                     f"{r['test_top1'] - fp32:+.2f} | {r['test_agreement']:.2f}% |")
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    record = {"networks": args.networks, "seeds": args.seeds, "calibration_images": args.calibration,
              "check_images": 1000, "budget": args.budget, "threads": args.threads, "rows": results}
    print(f"written: {write_result('int8_ptq_fmnist', record, markdown, root=args.out, threads=args.threads)}",
          file=sys.stderr)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, nargs="?", help="a training run folder, its model.safetensors or last.pt")
    parser.add_argument("--ptq", action="store_true", help="the calibration and fp32-group study (accuracy only)")
    parser.add_argument("--networks", nargs="+", default=["fmnist_lab", "fmnist_lab_lite"],
                        help="--ptq: registered networks; NAME_lite: NAME without SE, with ReLU6")
    parser.add_argument("--seeds", type=int, default=3, help="--ptq: runs per network")
    parser.add_argument("--budget", type=float, default=0.01, help="--ptq: fraction of check images that may change class")
    parser.add_argument("--runs", type=Path, default=REPO / "runs" / "int8_fmnist", help="--ptq: the training runs")
    parser.add_argument("--calibration", type=int, default=512, help="training images for calibration")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                        help="results folder (default: benchmarks/results)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.ptq:
        return ptq(args)
    if args.checkpoint is None:
        parser.error("give a checkpoint (a training run folder), or --ptq")
    file = args.checkpoint
    loaded = fetch_weights(file)
    config = config_of_run(file, loaded.meta.provenance if loaded.meta is not None else None)
    model = create_model(None, weights=loaded).eval()
    pre: Preprocessing = model.preprocessing
    test_x, test_y = images_and_labels(config, "test", pre)
    held = dataclasses.replace(config, data=dataclasses.replace(config.data, minival=args.calibration))
    calibration, _ = images_and_labels(held, "minival", pre)
    size = test_x.shape[-1]

    with torch.inference_mode():
        eager_logits = batched(lambda x: model(torch.from_numpy(x)).numpy(), test_x)
        # bf16 as PyTorch computes it on this CPU (native AVX512_BF16 where present, emulated elsewhere).
        with torch.autocast("cpu", dtype=torch.bfloat16):
            bf16_logits = batched(lambda x: model(torch.from_numpy(x)).float().numpy(), test_x)
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = Path(tmp) / "fp32.onnx"
        export_model(model, fp32_path, resolution=size)
        export_diff = max_abs_diff(model, fp32_path, "onnx", [size], batch=8)
        runners = {path: onnx_file_runner(fp32_path, path, lambda: calibration, threads=args.threads)[0]
                   for path in ("onnx-fp32", "onnx-int8", "openvino-fp32", "openvino-int8")}
        ov_bf16, bf16_ran = onnx_file_runner(fp32_path, "openvino-bf16", lambda: calibration, threads=args.threads)
        logits = {name: batched(run, test_x) for name, run in runners.items()}
        logits["openvino-bf16"] = batched(ov_bf16, test_x)
        logits["torch-bf16-autocast"] = bf16_logits
        accuracy = {"torch_fp32": top1(eager_logits, test_y), **{name: top1(v, test_y) for name, v in logits.items()}}
        fp32_logits = logits["onnx-fp32"]
        agreement = float(100.0 * (fp32_logits.argmax(1) == logits["onnx-int8"].argmax(1)).mean())
        logit_error = {name: float(np.abs(v - eager_logits).max()) for name, v in logits.items()}
        speed = time_paths(model, runners, test_x)
    record = {"command": " ".join([sys.executable, *sys.argv]), "checkpoint": str(file), "model": model.spec.name,
              "test_images": len(test_y), "calibration_images": len(calibration), "threads": args.threads,
              "export_max_abs_diff": export_diff, "top1": accuracy, "max_abs_logit_error_vs_eager_fp32": logit_error,
              "openvino_bf16_ran_as": bf16_ran,
              "int8_minus_fp32_points": accuracy["onnx-int8"] - accuracy["onnx-fp32"],
              "openvino_int8_minus_fp32_points": accuracy["openvino-int8"] - accuracy["openvino-fp32"],
              "bf16_minus_fp32_points": accuracy["torch-bf16-autocast"] - accuracy["torch_fp32"],
              "int8_fp32_prediction_agreement": agreement, "speed": speed}
    lines = [f"`{model.spec.name}` trained on Fashion-MNIST ({file}), {len(test_y):,} test images, int8 calibrated "
             f"on {len(calibration)} training images, {args.threads} threads.", "",
             "| path | test top-1 | max abs logit error vs eager fp32 |", "|---|---|---|"]
    lines += [f"| {name} | {value:.2f}% | {logit_error.get(name, 0.0):.2e} |" for name, value in accuracy.items()]
    lines += ["", f"OpenVINO bf16 ran as {bf16_ran} on this CPU; torch bf16 autocast - fp32: "
                  f"{record['bf16_minus_fp32_points']:+.2f} points; NNCF int8 - fp32 (OpenVINO): "
                  f"{record['openvino_int8_minus_fp32_points']:+.2f} points.",
              "", f"onnxruntime int8 - fp32: {record['int8_minus_fp32_points']:+.2f} points; int8 and fp32 agree on "
                  f"{agreement:.2f}% of test images; fp32 ONNX vs eager max |logit diff| {export_diff:.1e}.", "",
              "| batch | path | ms/batch | images/s | vs timm eager |", "|---|---|---|---|---|"]
    for batch, rows in speed.items():
        lines += [f"| {batch} | {name} | {r['ms']:.2f} | {r['images_per_s']:.0f} | {r['vs_timm_eager']:.2f}x |"
                  for name, r in rows.items()]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    print(f"written: {write_result('int8_fmnist', record, markdown, root=args.out, threads=args.threads)}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
