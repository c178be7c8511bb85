"""int8 static quantisation with onnxruntime: accuracy change and speed-up, on pretrained
EfficientNet-Lite0 (official weights) and real photographs.

    python benchmarks/bench_int8.py [--calibration 64] [--held-out 160] [--threads 2]

Accuracy: without a labelled dataset on this machine, the measure is top-1 agreement of
int8 with fp32 on held-out crops of scikit-image's photographs (calibration uses other
crops), over all crops and over those fp32 is confident about (> 50%). Speed: fp32 and
int8 onnxruntime and eager PyTorch, alternately, at batch 1 and 32.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

import effnet
from effnet.bench import time_alternately
from effnet.deploy.calibration import sample_photos
from effnet.deploy.export import export_model
from effnet.deploy.fuse import optimize_for_inference
from effnet.deploy.quantize import agreement, quantize_onnx
from effnet.deploy.runtime import OnnxRunner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibration", type=int, default=64)
    parser.add_argument("--held-out", type=int, default=160)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = effnet.create_model("efficientnet_lite0", weights="lite0.official").eval()
    calibration = sample_photos(model, args.calibration, seed=1)
    held_out = sample_photos(model, args.held_out, seed=2)
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path, int8_path = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        export_model(model, fp32_path, resolution=224)
        quantize_onnx(fp32_path, int8_path, calibration)
        fp32, int8 = OnnxRunner(fp32_path, threads=args.threads), OnnxRunner(int8_path, threads=args.threads)
        result = agreement(fp32(held_out), int8(held_out))
        speed = {}
        for batch in (1, 32):
            x = torch.from_numpy(held_out[:batch]).contiguous()
            x_nhwc = x.contiguous(memory_format=torch.channels_last)
            eager = optimize_for_inference(model)

            def run_eager(m=eager, x=x_nhwc):  # type: ignore[no-untyped-def]
                with torch.inference_mode():
                    return m(x)

            images = x.numpy()
            samples = time_alternately({"onnx-fp32": lambda: fp32(images), "onnx-int8": lambda: int8(images),  # noqa: B023
                                        "torch-fused-nhwc": run_eager}, rounds=3, min_time=2.0)
            speed[batch] = {name: sorted(v)[len(v) // 2] for name, v in samples.items()}
    record = {"model": "efficientnet_lite0 (lite0.official)", "threads": args.threads,
              "calibration_images": args.calibration, "agreement": result.__dict__,
              "seconds_per_batch": speed,
              "int8_speedup_over_fp32_onnx": {b: s["onnx-fp32"] / s["onnx-int8"] for b, s in speed.items()},
              "int8_speedup_over_torch_fused": {b: s["torch-fused-nhwc"] / s["onnx-int8"] for b, s in speed.items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "int8_lite0.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
