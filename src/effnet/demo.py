"""The main job (`./run demo`): the model family against the paper, the B0 table, compound
scaling at work, official Lite0 weights on real photos, a short real training run and a quick
run of the scaling laboratory."""

from __future__ import annotations

import importlib.util

from .cli import main as cli


def section(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def main() -> int:
    section("The EfficientNet family and the paper's baselines, counted from their specs")
    cli(["models"])
    section("EfficientNet-B0, in the shape of the paper's Table 1")
    cli(["show", "efficientnet_b0"])
    section("Compound scaling of B0 with phi = 2 (paper eq. 3)")
    cli(["scale", "efficientnet_b0", "--phi", "2"])
    section("Compound scaling works for any ConvNet: ResNet-50 with phi = 1")
    cli(["scale", "resnet50", "--phi", "1"])
    if importlib.util.find_spec("effnet.weights") and importlib.util.find_spec("effnet.predict"):
        from .demo_predict import run as predict_demo

        section("Pretrained EfficientNet-Lite0 (official weights) on real photos")
        predict_demo()
    section("A short real training run: compound-scaled EfficientNet (phi = 0) from scratch on Fashion-MNIST")
    # Two epochs on 12,000 images (~1.5 min on 2 cores). So few steps need BN momentum 0.1 (TF's 0.01
    # would leave the running statistics at their start) and no EMA; docs/training.md has the full run.
    cli(["train", "--config", "configs/fashion_mnist_small.yaml", "model.name=fmnist_s0", "train.epochs=2",
         "data.train_subset=12000", "data.eval_subset=2000", "train.amp=none", "train.ema_decay=0",
         "model.bn_momentum=0.1", "schedule.warmup_epochs=0.3", "run.out_dir=demo-output/runs",
         "run.tensorboard=false"])
    section("The scaling laboratory, --quick: compound vs width / depth / resolution at matched MAdds")
    # One seed, phi = 1, two epochs on 5,000 images per network (1-2 minutes); docs/lab.md has the full
    # experiment with three seeds and confidence intervals.
    cli(["experiment", "scaling", "--quick", "--out", "demo-output/lab-quick"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
