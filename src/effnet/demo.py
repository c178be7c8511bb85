"""The main job (`./run demo`): the model family against the paper, the B0 table, compound
scaling at work, official Lite0 weights on real photos, a short real training run whose run
folder then goes to eval, predict and export, and a quick run of the scaling laboratory.

Every section runs even when one before it failed; the exit status is 1 when any failed."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from PIL import Image

from .cli import main as cli
from .data.fashion_mnist import FashionMNIST
from .demo_predict import run as predict_demo

OUT = Path("demo-output")
RUN = OUT / "runs" / "fmnist_s0-demo"


def _fashion_mnist_samples(count: int = 4) -> list[str]:
    """A few Fashion-MNIST test images as PNG files, for `effnet predict` on the trained run."""
    test = FashionMNIST(None, "test", channels=1)
    folder = OUT / "fashion-mnist-samples"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        image, label = test[i]
        path = folder / f"{i}-{test.classes[label].replace('/', '-')}.png"
        Image.fromarray(image.numpy()[0]).save(path)
        paths.append(str(path))
    return paths


SECTIONS: Sequence[tuple[str, Callable[[], int]]] = (
    ("The EfficientNet family and the paper's baselines, counted from their specs", lambda: cli(["models"])),
    ("EfficientNet-B0, in the shape of the paper's Table 1", lambda: cli(["show", "efficientnet_b0"])),
    ("Compound scaling of B0 with phi = 2 (paper eq. 3)", lambda: cli(["scale", "efficientnet_b0", "--phi", "2"])),
    ("Compound scaling works for any ConvNet: ResNet-50 with phi = 1",
     lambda: cli(["scale", "resnet50", "--phi", "1"])),
    ("Pretrained EfficientNet-Lite0 (official weights) on real photos", lambda: predict_demo(OUT)),
    # Two epochs on 12,000 images (~1.5 min on 2 cores), the best epoch chosen on 5,000 minival
    # images held out of train, the test set used once at the end. So few steps need BN momentum
    # 0.1 (TF's 0.01 would leave the running statistics at their start) and no EMA;
    # docs/training.md has the full run.
    ("A short real training run: compound-scaled EfficientNet (phi = 0) from scratch on Fashion-MNIST",
     lambda: cli(["train", "--config", "configs/fashion_mnist_small.yaml", "model.name=fmnist_s0", "train.epochs=2",
                  "data.train_subset=12000", "data.eval_subset=2000", "train.amp=none", "train.ema_decay=0",
                  "model.bn_momentum=0.1", "schedule.warmup_epochs=0.3", f"run.out_dir={RUN.parent}",
                  f"run.name={RUN.name}", "run.tensorboard=false"])),
    ("The trained run is weights like any other: eval, predict and export take the run folder",
     lambda: (cli(["eval", str(RUN)]) or cli(["predict", *_fashion_mnist_samples(), "--weights", str(RUN),
                                             "--top-k", "2"])
              or cli(["export", "--weights", str(RUN), "--output", str(OUT / "fmnist_s0.onnx")]))),
    # One seed, phi = 1, two epochs on 5,000 images per network (1-2 minutes): a smoke test of the
    # pipeline. The committed full experiment (three seeds, intervals) is shown beside it.
    ("The scaling laboratory, --quick (a smoke test), beside the committed full experiment",
     lambda: _lab_smoke_test_and_full_run()),
)

FULL_RUN = Path("benchmarks/results/lab/summary.json")
FULL_PLOT = Path("docs/img/lab_scaling.png")


def _lab_smoke_test_and_full_run() -> int:
    status = cli(["lab", "scaling", "--quick", "--out", str(OUT / "lab-quick")])
    if not FULL_RUN.is_file():
        print(f"(the full experiment's results are in the source repository: {FULL_RUN}, docs/lab.md)")
        return status
    full = json.loads(FULL_RUN.read_text())
    print(f"\nThe full experiment (committed, {len(full['seeds'])} seeds per network, docs/lab.md), compound minus "
          "single-dimension in points of top-1 with Welch 95% intervals:")
    for phi, against in full["compound_minus"].items():
        print(f"  {phi}: " + ", ".join(f"{other} {d['diff']:+.2f} ±{d['ci95']:.2f}" for other, d in against.items()))
    if FULL_PLOT.is_file():
        shutil.copyfile(FULL_PLOT, OUT / "lab-quick" / "full-run-scaling.png")
        print(f"  plot: {OUT / 'lab-quick' / 'full-run-scaling.png'} (the smoke test's: {OUT / 'lab-quick' / 'scaling.png'})")
    return status


def main() -> int:
    failed = []
    for title, run in SECTIONS:
        print(f"\n=== {title} ===", flush=True)
        try:
            status = run()
        except Exception as error:  # noqa: BLE001 - report the section, go on with the next one
            print(f"demo section failed: {type(error).__name__}: {error}", flush=True)
            status = 1
        if status:
            failed.append(title)
    if failed:
        print(f"\n{len(failed)} of {len(SECTIONS)} demo sections failed: " + "; ".join(failed), flush=True)
        return 1
    print(f"\nall {len(SECTIONS)} demo sections ran; pictures and files are in {OUT}/", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
