"""Quantisation-aware training against post-training quantisation on Fashion-MNIST: test
top-1 of the float network, of its int8 model after plain calibration (PTQ) and of its int8
model after a QAT fine-tune, for a network with SiLU + squeeze-and-excitation (B0's blocks)
and a Lite-style one (ReLU6, no SE): ``fmnist_lab`` and ``fmnist_lab_lite``, trained as
``bench_int8_fmnist.py --ptq`` trains them.

    nice -n 10 .venv/bin/python benchmarks/qat_fashion_mnist.py [--networks fmnist_lab fmnist_lab_lite] [--seeds 3]

Per network and seed: float training from scratch (``configs/fashion_mnist_small.yaml``, the
network at ``--image-size`` px, no EMA), then ``effnet train quant.qat=true`` from that run
(PT2E fake quantisation with XNNPACK's quantiser; BN statistics and ranges frozen in the last
epoch). PTQ is PT2E too: the same quantiser without QAT, calibrated on ``--calibration``
minival images (held out of train, never the test set), then ``convert_pt2e``. Both int8
models are PyTorch's converted graphs (quantise/dequantise around int8 ops). Every model is
selected on minival; the test set is read once per model.

Each finished (network, seed) is written to ``OUT/NETWORK/journal.json``, so a cut benchmark
continues with what it lacks, and networks can run in separate processes on the same OUT
(``--report`` then only gathers). Writes ``benchmarks/results/qat_fashion_mnist/``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from effnet import create_model
from effnet.atomic import write_atomic
from effnet.bench.results import write_result
from effnet.train.config_files import load_config
from effnet.train.data import build_eval_loader
from effnet.train.evaluate import evaluate
from effnet.train.loop import train
from effnet.train.qat import int8_model, load_qat_graph, xnnpack_quantizer
from effnet.weights import read_weights

# The same two networks as the PTQ benchmark: one definition of the Lite-style variant.
from bench_int8_fmnist import lite_style  # noqa: E402  (benchmarks/ is on sys.path when a script runs)

REPO = Path(__file__).resolve().parent.parent


def float_overrides(args: argparse.Namespace, name: str, seed: int, out: Path) -> list[str]:
    return [f"model.name={name.removesuffix('_lite')}", f"data.image_size={args.image_size}", f"train.epochs={args.epochs}",
            "train.ema_decay=0", "train.eval_raw=true", f"train.seed={seed}", f"data.train_subset={args.train_subset}",
            f"train.threads={args.threads}", f"run.out_dir={out}", f"run.name=float-seed{seed}",
            "run.progress=false", "run.tensorboard=false"]


def qat_overrides(args: argparse.Namespace, seed: int, out: Path) -> list[str]:
    return ["model.name=null", f"model.weights={out / f'float-seed{seed}'}", "model.channels_last=false",
            "quant.qat=true", f"train.epochs={args.qat_epochs}", f"optim.lr_per_256={args.qat_lr}",
            "schedule.warmup_epochs=0", "train.ema_decay=0", f"data.image_size={args.image_size}",
            f"train.seed={seed}", f"train.threads={args.threads}", f"run.out_dir={out}", f"data.train_subset={args.train_subset}",
            f"run.name=qat-seed{seed}", "run.progress=false", "run.tensorboard=false"]


def ptq_top1(run: Path, config, calibration: int) -> float:  # type: ignore[no-untyped-def]
    """Test top-1 of the run's model after PT2E post-training quantisation (XNNPACK, per channel)."""
    import torchao.quantization.pt2e as pt2e
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    model = create_model(None, weights=run).eval()
    example = torch.zeros(2, model.spec.in_chans, config.data.image_size, config.data.image_size)
    graph = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},)).module()
    prepared = prepare_pt2e(graph, xnnpack_quantizer(per_channel=True, qat=False)[0])
    seen = 0
    calib, _ = build_eval_loader(config, "minival", model.preprocessing)
    with torch.no_grad():
        for images, _labels in calib:
            prepared(images[: calibration - seen])
            seen += min(len(images), calibration - seen)
            if seen >= calibration:
                break
    int8 = convert_pt2e(prepared)
    int8.num_classes = model.num_classes
    test, _ = build_eval_loader(config, "test", model.preprocessing)
    pt2e.allow_exported_model_train_eval(int8)
    return evaluate(int8, test, model.num_classes, device=torch.device("cpu")).top1


def finished_or_trained(config, spec=None) -> dict:  # type: ignore[no-untyped-def]
    """The provenance of the run's model: trained now, continued from its last.pt (a cut
    benchmark), or as a finished run left it."""
    folder = Path(config.run.out_dir) / config.run.name
    _, meta = read_weights(folder) if (folder / "model.safetensors").is_file() else (None, None)
    if meta is None or meta.provenance.get("test_top1") is None:
        train(config, spec=spec, resume=folder if (folder / "last.pt").is_file() else None)
        _, meta = read_weights(folder)
    return meta.provenance  # type: ignore[union-attr]


def onnx_int8(qat_run: Path, config) -> dict:  # type: ignore[no-untyped-def]
    """The QAT run's int8 graph exported as ONNX QDQ (its learned scales) and run by
    onnxruntime: test top-1, and how often its top-1 class is the PyTorch int8 graph's."""
    from effnet.deploy.qat import export_int8_onnx
    from effnet.deploy.runtime import OnnxRunner

    graph = load_qat_graph(qat_run)
    int8 = int8_model(graph)
    path = export_int8_onnx(int8, qat_run / "int8_qdq.onnx", in_chans=graph.spec.in_chans,
                            image_size=config.data.image_size)
    runner = OnnxRunner(path, threads=1)
    test, _ = build_eval_loader(config, "test", graph.preprocessing)
    correct = agree = seen = 0
    with torch.no_grad():
        for images, labels in test:
            ours = torch.from_numpy(runner(images.float().numpy())).argmax(1)
            correct += int((ours == labels).sum())
            agree += int((ours == int8(images).argmax(1)).sum())
            seen += len(labels)
    return {"qat_onnx_int8_top1": 100.0 * correct / seen, "onnx_agrees_with_int8": 100.0 * agree / seen}


def executorch_int8(qat_run: Path, config, batch: int = 100) -> dict:  # type: ignore[no-untyped-def]
    """The QAT run's int8 graph lowered to ExecuTorch (XNNPACK delegate): test top-1, and how
    often its top-1 class is the PyTorch int8 graph's."""
    from effnet.deploy.qat import executorch_runner, export_int8_executorch

    graph = load_qat_graph(qat_run)
    int8 = int8_model(graph)
    path = export_int8_executorch(int8, qat_run / "int8_xnnpack.pte", in_chans=graph.spec.in_chans,
                                  image_size=config.data.image_size, batch=batch)
    run = executorch_runner(path)
    test, _ = build_eval_loader(config, "test", graph.preprocessing)
    correct = agree = seen = 0
    with torch.no_grad():
        for images, labels in test:
            for chunk, truth in zip(images.float().split(batch), labels.split(batch)):
                padded = torch.cat([chunk, chunk.new_zeros(batch - len(chunk), *chunk.shape[1:])])
                ours = run(padded)[: len(chunk)].argmax(1)
                correct += int((ours == truth).sum())
                agree += int((ours == int8(chunk).argmax(1)).sum())
                seen += len(truth)
    return {"qat_executorch_int8_top1": 100.0 * correct / seen, "executorch_agrees_with_int8": 100.0 * agree / seen}


def run_seed(args: argparse.Namespace, name: str, seed: int, out: Path) -> dict:
    """Float training, PTQ of its model and a QAT fine-tune from it: one journal record."""
    record: dict[str, object] = {"network": name, "seed": seed}
    start = time.perf_counter()
    config = load_config(REPO / "configs" / "fashion_mnist_small.yaml", float_overrides(args, name, seed, out))
    done = finished_or_trained(config, lite_style(name) if name.endswith("_lite") else None)
    record.update(float_top1=done["test_top1"], float_minival_top1=done["val_top1"], float_s=time.perf_counter() - start)
    start = time.perf_counter()
    record.update(ptq_int8_top1=ptq_top1(out / f"float-seed{seed}", config, args.calibration),
                  ptq_s=time.perf_counter() - start)
    start = time.perf_counter()
    qat = finished_or_trained(load_config(REPO / "configs" / "fashion_mnist_small.yaml", qat_overrides(args, seed, out)))
    record.update(qat_fake_quant_top1=qat["test_top1"], qat_int8_top1=qat["quantization"]["int8_test_top1"],
                  qat_minival_top1=qat["val_top1"], qat_s=time.perf_counter() - start)
    return record


def table(records: list[dict], args: argparse.Namespace) -> str:
    lines = [f"Fashion-MNIST at {args.image_size} px, {args.epochs} float epochs (cosine, batch 256, no EMA), then "
             f"{args.qat_epochs} QAT epochs (lr {args.qat_lr} per 256, BN and ranges frozen in the last); PTQ "
             f"calibrated on {args.calibration} minival images. Test top-1 (10,000 images) of the model selected on "
             "5,000 minival images; int8 = PyTorch's converted PT2E graph (XNNPACK quantiser, per-channel weights).", "",
             "| network | seed | float | PTQ int8 | QAT fake-quant | QAT int8 | QAT int8 - float | PTQ - float |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(records, key=lambda r: (r["network"], r["seed"])):
        lines.append(f"| {r['network']} | {r['seed']} | {r['float_top1']:.2f}% | {r['ptq_int8_top1']:.2f}% | "
                     f"{r['qat_fake_quant_top1']:.2f}% | {r['qat_int8_top1']:.2f}% | "
                     f"{r['qat_int8_top1'] - r['float_top1']:+.2f} | {r['ptq_int8_top1'] - r['float_top1']:+.2f} |")
    for name in sorted({r["network"] for r in records}):
        rs = [r for r in records if r["network"] == name]
        mean = {k: statistics.mean(r[k] for r in rs) for k in
                ("float_top1", "ptq_int8_top1", "qat_fake_quant_top1", "qat_int8_top1")}
        lines.append(f"| **{name}, mean** | {len(rs)} | {mean['float_top1']:.2f}% | {mean['ptq_int8_top1']:.2f}% | "
                     f"{mean['qat_fake_quant_top1']:.2f}% | {mean['qat_int8_top1']:.2f}% | "
                     f"{mean['qat_int8_top1'] - mean['float_top1']:+.2f} | {mean['ptq_int8_top1'] - mean['float_top1']:+.2f} |")
    onnx = [r for r in records if "qat_onnx_int8_top1" in r]
    if onnx:
        lines += ["", "The QAT int8 graphs exported as ONNX QDQ (learned scales) and run by onnxruntime:", "",
                  "| network | seed | QAT int8, PyTorch | QAT int8, onnxruntime | same top-1 class |", "|---|---|---|---|---|"]
        lines += [f"| {r['network']} | {r['seed']} | {r['qat_int8_top1']:.2f}% | {r['qat_onnx_int8_top1']:.2f}% | "
                  f"{r['onnx_agrees_with_int8']:.2f}% |" for r in sorted(onnx, key=lambda r: (r["network"], r["seed"]))]
    runtimes = [r for r in records if "qat_executorch_int8_top1" in r]
    if runtimes:
        lines += ["", "The QAT int8 graphs lowered to ExecuTorch with the XNNPACK delegate:", "",
                  "| network | seed | QAT int8, PyTorch | QAT int8, ExecuTorch | same top-1 class |", "|---|---|---|---|---|"]
        lines += [f"| {r['network']} | {r['seed']} | {r['qat_int8_top1']:.2f}% | {r['qat_executorch_int8_top1']:.2f}% | "
                  f"{r['executorch_agrees_with_int8']:.2f}% |" for r in sorted(runtimes, key=lambda r: (r["network"], r["seed"]))]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--networks", nargs="+", default=["fmnist_lab", "fmnist_lab_lite"],
                        help="registered networks; NAME_lite: NAME without SE, with ReLU6")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=8, help="float training epochs")
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--qat-lr", type=float, default=0.003, help="QAT learning rate per 256 images")
    parser.add_argument("--calibration", type=int, default=1024, help="PTQ calibration images (minival)")
    parser.add_argument("--train-subset", type=int, default=0, help="train on the first N images only (0: all)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report", action="store_true", help="only gather the journals and write the result")
    parser.add_argument("--executorch", action="store_true", help="also run each QAT int8 model in ExecuTorch "
                                                                  "(XNNPACK delegate)")
    parser.add_argument("--onnx", action="store_true", help="also run each QAT int8 model as ONNX QDQ in onnxruntime "
                                                            "(needs onnxscript)")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "qat_fashion_mnist")
    parser.add_argument("--results", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for name in [] if args.report else args.networks:
        journal = args.out / name / "journal.json"
        done = json.loads(journal.read_text())["runs"] if journal.is_file() else []
        for seed in range(args.seeds):
            if any(r["seed"] == seed for r in done):
                continue
            print(f"== {name}, seed {seed}", flush=True)
            done.append(run_seed(args, name, seed, args.out / name))
            write_atomic(journal, json.dumps({"settings": vars(args) | {"out": str(args.out), "results": str(args.results)},
                                              "runs": done}, indent=2, default=str) + "\n")
    records = [r for name in args.networks if (args.out / name / "journal.json").is_file()
               for r in json.loads((args.out / name / "journal.json").read_text())["runs"]]
    for r in records:
        config = load_config(REPO / "configs" / "fashion_mnist_small.yaml", qat_overrides(args, r["seed"], args.out / r["network"]))
        qat_run = args.out / r["network"] / f"qat-seed{r['seed']}"
        if args.onnx and "qat_onnx_int8_top1" not in r:
            r.update(onnx_int8(qat_run, config))
        if args.executorch and "qat_executorch_int8_top1" not in r:
            r.update(executorch_int8(qat_run, config))
    markdown = table(records, args)
    print(markdown)
    command = " ".join([sys.executable, *sys.argv])
    record = {"command": command, "settings": vars(args) | {"out": str(args.out), "results": str(args.results)},
              "runs": records}
    print(f"written: {write_result('qat_fashion_mnist', record, markdown, root=args.results, threads=args.threads)}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
