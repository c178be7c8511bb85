"""int8 (onnxruntime's QDQ quantiser; NNCF for OpenVINO) and bf16 on pretrained
EfficientNet-Lite0 (official weights) and real photographs: agreement with fp32 and speed,
from the same model.

    python benchmarks/bench_int8.py [--calibration 64] [--held-out 160] [--threads 2]
    python benchmarks/bench_int8.py --ptq [--check 96] [--budget 0.02]

``--ptq`` measures accuracy only: every calibration choice of onnxruntime and NNCF, then the
best (picked on ``--check`` crops, disjoint from calibration and held-out crops) with the
layer groups a sensitivity analysis keeps in fp32 (``effnet.deploy.sensitivity``), each as
top-1 agreement with fp32 on the held-out crops. Writes ``benchmarks/results/int8_ptq_lite0/``.

Accuracy: without a labelled dataset on this machine, the measure is top-1 agreement and
top-5 overlap with fp32 on held-out crops of scikit-image's photographs (calibration uses
other crops), over all crops and over those fp32 is confident about (> 50%). Speed: every
path alternately at batch 1 and 32. Writes ``benchmarks/results/int8_lite0/`` (through
``effnet.bench.results``).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import effnet
from effnet.bench import time_alternately
from effnet.bench.contestants import onnx_file_runner
from effnet.bench.results import write_result
from effnet.deploy.calibration import sample_photos
from effnet.deploy.export import export_model
from effnet.deploy.fuse import optimize_for_inference
from effnet.deploy.quantize import agreement
from effnet.deploy.runtime import OnnxRunner
from int8_ptq_study import ptq_study


def ptq(args: argparse.Namespace) -> None:
    """Agreement with fp32 on held-out crops for every PTQ choice (see ``int8_ptq_study``)."""
    model = effnet.create_model("efficientnet_lite0", weights="lite0.official").eval()
    calibration = sample_photos(model, args.calibration, seed=1)
    held_out = sample_photos(model, args.held_out, seed=2)
    check = sample_photos(model, args.check, seed=3)
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = Path(tmp) / "fp32.onnx"
        export_model(model, fp32_path, resolution=224)
        fp32 = OnnxRunner(fp32_path, threads=args.threads)(held_out)
        rows = ptq_study(fp32_path, calibration, check, lambda run: agreement(fp32, run(held_out)).__dict__,
                         Path(tmp), runtimes=tuple(args.runtimes), budget=args.budget,
                         log=lambda line: print(line, file=sys.stderr, flush=True))
    lines = [f"EfficientNet-Lite0 (lite0.official), 224 px: int8 against fp32 on {args.held_out} held-out photo crops; "
             f"calibration {args.calibration} crops, choices and fp32 groups picked on {args.check} other crops "
             f"(budget: at most {args.budget:.0%} of them change class).", "",
             "| runtime | int8 choice | top-1 agreement | top-5 overlap | agreement, fp32 > 50% sure | max logit diff |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['runtime']} | {r['choice']} | {r['top1_agreement']:.1%} | {r['top5_overlap']:.1%} | "
              f"{r['top1_agreement_confident']:.1%} ({r['confident_images']}) | {r['max_abs_logit_diff']:.2f} |"
              for r in rows]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    name = "int8_ptq_lite0" + (f"_{args.runtimes[0]}" if len(args.runtimes) == 1 else "")
    record = {"model": "efficientnet_lite0 (lite0.official)", "resolution": 224, "runtimes": args.runtimes,
              "threads": args.threads,
              "calibration_images": args.calibration, "check_images": args.check, "held_out_images": args.held_out,
              "budget": args.budget, "rows": rows}
    print(f"written: {write_result(name, record, markdown, root=args.out, threads=args.threads)}",
          file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibration", type=int, default=64)
    parser.add_argument("--held-out", type=int, default=160)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ptq", action="store_true", help="the calibration and fp32-group study (accuracy only)")
    parser.add_argument("--runtimes", nargs="+", default=["onnx", "openvino"], choices=["onnx", "openvino"],
                        help="--ptq: the quantisers to study (each writes int8_ptq_lite0_RUNTIME when alone)")
    parser.add_argument("--check", type=int, default=96, help="--ptq: crops that pick the choices and fp32 groups")
    parser.add_argument("--budget", type=float, default=0.02,
                        help="--ptq: the fraction of check crops allowed to change class")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results",
                        help="results folder (default: benchmarks/results)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.ptq:
        return ptq(args)
    model = effnet.create_model("efficientnet_lite0", weights="lite0.official").eval()
    calibration = sample_photos(model, args.calibration, seed=1)
    held_out = sample_photos(model, args.held_out, seed=2)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_logits = model(torch.from_numpy(held_out)).float().numpy()
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = Path(tmp) / "fp32.onnx"
        export_model(model, fp32_path, resolution=224)
        runners = {path: onnx_file_runner(fp32_path, path, lambda: calibration, threads=args.threads)[0]
                   for path in ("onnx-fp32", "onnx-int8", "openvino-fp32", "openvino-int8")}
        ov_bf16, bf16_ran = onnx_file_runner(fp32_path, "openvino-bf16", lambda: calibration, threads=args.threads)
        fp32 = runners["onnx-fp32"](held_out)
        results = {name: agreement(fp32, run(held_out)).__dict__ for name, run in runners.items() if name != "onnx-fp32"}
        results["openvino-bf16"] = agreement(fp32, ov_bf16(held_out)).__dict__
        results["torch-bf16-autocast"] = agreement(fp32, bf16_logits).__dict__
        eager = optimize_for_inference(model)
        speed = {}
        for batch in (1, 32):
            images = np.ascontiguousarray(held_out[:batch])
            x_nhwc = torch.from_numpy(images).contiguous(memory_format=torch.channels_last)

            def run_eager(m=eager, x=x_nhwc):  # type: ignore[no-untyped-def]
                with torch.inference_mode():
                    return m(x)

            timed = {name: (lambda run=run, x=images: run(x)) for name, run in runners.items()}
            samples = time_alternately({**timed, "torch-fused-nhwc": run_eager}, rounds=3, min_time=2.0)
            speed[batch] = {name: sorted(v)[len(v) // 2] for name, v in samples.items()}
    record = {"model": "efficientnet_lite0 (lite0.official)", "threads": args.threads,
              "calibration_images": args.calibration, "held_out_images": args.held_out,
              "agreement_with_onnx_fp32": results, "openvino_bf16_ran_as": bf16_ran,
              "seconds_per_batch": speed,
              "images_per_s": {b: {name: b / t for name, t in s.items()} for b, s in speed.items()},
              "onnx_int8_speedup_over_onnx_fp32": {b: s["onnx-fp32"] / s["onnx-int8"] for b, s in speed.items()},
              "openvino_int8_speedup_over_openvino_fp32": {b: s["openvino-fp32"] / s["openvino-int8"]
                                                           for b, s in speed.items()}}
    print(json.dumps(record, indent=2))
    print(f"written: {write_result('int8_lite0', record, root=args.out, threads=args.threads)}", file=sys.stderr)


if __name__ == "__main__":
    main()
