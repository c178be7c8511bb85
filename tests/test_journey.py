"""A practitioner's whole journey on real photos, through the command line only: fine-tune
the official Lite0 weights on a small ImageFolder -> `effnet eval RUN` -> `effnet predict
--weights RUN` -> `effnet export --weights RUN` -> `effnet predict --runtime onnx`, which
gives the same top-k. The run folder is weights like any other: no model name anywhere."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from effnet.cli import main

from .optional import require
from .lite import needs_lite0

skimage_data = require("skimage.data")
require("onnxruntime")

# Three classes of real photographs from scikit-image: crops of each, mirrored at random.
CLASSES = {"cat": ("chelsea", "cat"), "coffee": ("coffee",), "rocket": ("rocket",)}


def _crops(names: tuple[str, ...], count: int, rng: np.random.Generator) -> list[Image.Image]:
    photos = [Image.fromarray(getattr(skimage_data, name)()[..., :3]) for name in names]
    out = []
    for i in range(count):
        photo = photos[i % len(photos)]
        w, h = photo.size
        side = int(min(w, h) * rng.uniform(0.6, 1.0))
        left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = photo.crop((left, top, left + side, top + side)).resize((96, 96), Image.Resampling.BICUBIC)
        out.append(crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop)
    return out


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for split, count in (("train", 12), ("test", 4)):
        for label, names in CLASSES.items():
            folder = root / split / label
            folder.mkdir(parents=True)
            for i, image in enumerate(_crops(names, count, rng)):
                image.save(folder / f"{label}_{i}.jpg", quality=92)
    return root


def _predict(args: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict]:
    capsys.readouterr()
    assert main(["predict", *args, "--json", "--top-k", "3"]) == 0
    return json.loads(capsys.readouterr().out)


@needs_lite0
def test_fine_tune_then_eval_predict_export_and_onnx_agree(photo_folder: Path, tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    run = tmp_path / "runs" / "photos"
    status = main(["train", "data.dataset=folder", f"data.root={photo_folder}", "data.channels=3", "data.image_size=64",
                   "model.name=efficientnet_lite0", "model.weights=lite0.official", "model.bn_momentum=0.1",
                   "train.epochs=2", "train.batch_size=8", "train.eval_batch_size=16", "train.ema_decay=0",
                   "optim.lr=0.002", "schedule.warmup_epochs=0.5", "train.threads=1", f"run.out_dir={run.parent}",
                   f"run.name={run.name}", "run.progress=false", "run.tensorboard=false"])
    assert status == 0
    assert {"last.pt", "model.safetensors", "config.yaml"} <= {p.name for p in run.iterdir()}

    capsys.readouterr()
    assert main(["eval", str(run), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 12 and set(report["per_class"]) == set(CLASSES)

    test_images = photo_folder / "test"
    eager = _predict([str(test_images), "--weights", str(run), "--runtime", "torch"], capsys)
    assert len(eager) == 12 and all(r["error"] is None for r in eager)
    # The run's own class names, not ImageNet's, and the top-1 agrees with eval's accuracy.
    assert {r["top_k"][0]["name"] for r in eager} <= set(CLASSES)
    right = sum(r["top_k"][0]["name"] == Path(r["path"]).parent.name for r in eager)
    assert 100 * right / 12 == pytest.approx(report["top1"])

    onnx_file = tmp_path / "photos.onnx"
    capsys.readouterr()
    assert main(["export", "--weights", str(run), "--output", str(onnx_file), "--json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["model"] == "efficientnet_lite0" and exported["resolution"] == 64
    assert exported["max_abs_diff"] < 1e-4

    onnx = _predict([str(test_images), "--weights", str(run), "--runtime", "onnx"], capsys)
    assert [[c["name"] for c in r["top_k"]] for r in onnx] == [[c["name"] for c in r["top_k"]] for r in eager]
    for a, b in zip(onnx, eager):
        assert [c["probability"] for c in a["top_k"]] == pytest.approx([c["probability"] for c in b["top_k"]], abs=1e-4)

    # The run's files are weights too, and a torch checkpoint reads the same model back.
    from_file = _predict([str(test_images), "--weights", str(run / "model.safetensors"), "--runtime", "torch"], capsys)
    assert from_file == eager

    # cam and bench take the run too.
    assert main(["cam", str(test_images / "coffee" / "coffee_0.jpg"), "--weights", str(run), "--out",
                 str(tmp_path / "cam.png")]) == 0
    assert (tmp_path / "cam.png").read_bytes()[:4] == b"\x89PNG"
    bench = tmp_path / "bench.json"
    assert main(["bench", "--weights", str(run), "--latency-batch", "0", "--throughput-batch", "1",
                 "--train-batch", "0", "--inference", "eager", "--training", "", "--rounds", "1", "--min-time", "0",
                 "--no-memory", "--json", str(bench)]) == 0
    report = json.loads(bench.read_text())
    assert report["setting"]["resolution"] == 64 and report["setting"]["weights"] == str(run)
