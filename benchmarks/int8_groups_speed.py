"""What Lite0's int8 with measured fp32 groups costs in speed: OpenVINO fp32, bf16, NNCF int8
(full bias correction) and the same int8 with layer groups kept in fp32, timed alternately in
one process at batch 32 and batch 1, on the official Lite0 weights and the calibration crops of
``bench_int8.py --ptq`` (64 crops, seed 1).

    python benchmarks/int8_groups_speed.py [--keep-fp32 stem,stage0,...] [--threads 2]

The default groups are the ones ``bench_int8.py --ptq --runtimes openvino`` chose, read from
its ``results/int8_ptq_lite0_openvino/latest.json`` (which gives their accuracy). Writes
``results/int8_groups_speed/latest.{json,md}``; run it alone on the machine.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import effnet
from effnet.bench.results import write_result
from effnet.deploy.calibration import sample_photos
from effnet.deploy.export import export_model
from effnet.deploy.openvino import OpenVinoRunner, quantize_openvino
from effnet.deploy.quant_options import QuantOptions, parse_groups
from effnet.deploy.timing import time_alternately

STUDY = Path(__file__).parent / "results" / "int8_ptq_lite0_openvino" / "latest.json"


def study_groups() -> str:
    """The fp32 groups the NNCF study measured (its last row: the best choice + groups)."""
    return ",".join(json.loads(STUDY.read_text())["rows"][-1]["options"]["keep_fp32"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keep-fp32", default=None,
                        help="layer groups kept in fp32 in the mixed int8 model (default: the NNCF study's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = effnet.create_model("efficientnet_lite0", weights="lite0.official").eval()
    calibration = sample_photos(model, 64, seed=1)
    groups = parse_groups(args.keep_fp32 or study_groups())
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_model(model, Path(tmp) / "fp32.onnx", resolution=224).path
        full = QuantOptions(bias_correction="full")
        mixed = QuantOptions(bias_correction="full", keep_fp32=groups)
        runs = {"OpenVINO fp32": OpenVinoRunner(fp32, threads=args.threads),
                "OpenVINO bf16": OpenVinoRunner(fp32, threads=args.threads, precision="bf16"),
                "NNCF int8, full bias correction": OpenVinoRunner(
                    quantize_openvino(fp32, Path(tmp) / "int8.xml", calibration, options=full), threads=args.threads),
                f"NNCF int8, full bias correction, fp32: {'+'.join(groups)}": OpenVinoRunner(
                    quantize_openvino(fp32, Path(tmp) / "mixed.xml", calibration, options=mixed), threads=args.threads)}
        x = np.random.default_rng(0).standard_normal((32, 3, 224, 224), dtype=np.float32)
        batch = time_alternately({n: (lambda r=r: r(x)) for n, r in runs.items()}, rounds=args.rounds, min_time=1.0)
        single = time_alternately({n: (lambda r=r: r(x[:1])) for n, r in runs.items()}, rounds=args.rounds,
                                  min_time=0.5)
    rows = [{"path": n, "images_per_s": 32 / float(np.median(batch[n])), "ms_batch1": 1e3 * float(np.median(single[n]))}
            for n in runs]
    lines = ["# Lite0 int8 with fp32 groups: speed", "",
             f"Official Lite0 weights, 224 px, {args.threads} threads, {args.rounds} alternating rounds (median); "
             "calibration: 64 photo crops (seed 1), as in `bench_int8.py --ptq`.", "",
             "| path | images/s, batch 32 | ms, batch 1 |", "|---|---|---|"]
    lines += [f"| {r['path']} | {r['images_per_s']:.1f} | {r['ms_batch1']:.2f} |" for r in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    write_result("int8_groups_speed", {"keep_fp32": list(groups), "rows": rows}, text, root=args.out,
                 threads=args.threads, command=shlex.join([sys.executable, *sys.argv]))


if __name__ == "__main__":
    main()
