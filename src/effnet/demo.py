"""The main job (`./run demo`): the model family against the paper, the B0 table, and compound
scaling at work. Later sections appear as their features land."""

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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
