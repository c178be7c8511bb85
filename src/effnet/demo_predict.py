"""Demo section: official EfficientNet-Lite0 weights on photos that ship with scikit-image."""

from __future__ import annotations

import tempfile
from pathlib import Path

from PIL import Image

from .cli import main as cli

PHOTOS = ("coffee", "chelsea", "astronaut")


def run(out_dir: str | Path = "demo-output") -> int:
    try:
        from skimage import data
    except ImportError:
        print("scikit-image is not installed: `pip install scikit-image` for the demo photos")
        return 0
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        for name in PHOTOS:
            Image.fromarray(getattr(data, name)()).save(Path(folder) / f"{name}.png")
        status = cli(["predict", folder, "--model", "efficientnet_lite0", "--weights", "lite0.official",
                      "--top-k", "3"])
        cam = out / "cam_coffee.png"
        cli(["cam", str(Path(folder) / "coffee.png"), "--model", "efficientnet_lite0",
             "--weights", "lite0.official", "--out", str(cam)])
    return status
