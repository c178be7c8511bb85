"""Demo section: official EfficientNet-Lite0 weights on photos that ship with scikit-image."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from skimage import data

from .cli import main as cli

PHOTOS = ("coffee", "chelsea", "astronaut")


def run(out_dir: str | Path = "demo-output") -> int:
    photos = Path(out_dir) / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        Image.fromarray(getattr(data, name)()).save(photos / f"{name}.png")
    status = cli(["predict", str(photos), "--model", "efficientnet_lite0", "--weights", "lite0.official",
                  "--top-k", "3"])
    return status or cli(["cam", str(photos / "coffee.png"), "--model", "efficientnet_lite0", "--weights",
                          "lite0.official", "--out", str(Path(out_dir) / "cam_coffee.png")])
