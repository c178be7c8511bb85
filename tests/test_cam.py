"""Class activation maps (Zhou et al. 2016, the paper's Figure 7) and `effnet cam`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import effnet
from effnet.cam import class_activation_map, overlay, save_cam
from effnet.cli import main

from .optional import require
from .test_predict import MODEL, requires_weights


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return effnet.create_model(MODEL).eval()


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8))


def test_cam_is_the_class_logit_spread_over_space(model: torch.nn.Module, photo: Image.Image) -> None:
    # GAP then a linear layer: the mean of the raw map plus the class bias is the logit.
    cam = class_activation_map(photo, model, class_index=7)
    x = effnet.transforms_for(model)(photo).unsqueeze(0)
    with torch.no_grad():
        logit = model(x)[0, 7].item()
    assert cam.raw.mean() + model.classifier.bias[7].item() == pytest.approx(logit, abs=1e-4)
    assert cam.raw.shape == (7, 7)  # 224 / 32


def test_heatmap_is_normalised_at_input_size(model: torch.nn.Module, photo: Image.Image) -> None:
    cam = class_activation_map(photo, model)
    assert cam.heatmap.shape == (224, 224) and cam.image.size == (224, 224)
    assert cam.heatmap.min() >= 0 and cam.heatmap.max() == pytest.approx(1.0)
    # The hottest input region is where the raw map peaks (upsampling keeps the place).
    peak_raw = np.unravel_index(cam.raw.argmax(), cam.raw.shape)
    peak_heat = np.unravel_index(cam.heatmap.argmax(), cam.heatmap.shape)
    assert abs(peak_heat[0] // 32 - peak_raw[0]) <= 1 and abs(peak_heat[1] // 32 - peak_raw[1]) <= 1


def test_default_class_is_the_top_class(model: torch.nn.Module, photo: Image.Image) -> None:
    cam = class_activation_map(photo, model)
    x = effnet.transforms_for(model)(photo).unsqueeze(0)
    with torch.no_grad():
        probs = model(x).softmax(1)[0]
    assert cam.class_index == int(probs.argmax())
    assert cam.probability == pytest.approx(probs.max().item(), abs=1e-5)
    assert cam.class_name == f"class {cam.class_index}"


def test_input_as_seen_is_the_centre_crop(model: torch.nn.Module) -> None:
    image = Image.new("RGB", (400, 300), (0, 0, 255))
    image.paste((255, 0, 0), (150, 100, 250, 200))  # red square in the middle
    cam = class_activation_map(image, model)
    assert cam.image.getpixel((112, 112))[0] > 240  # undone normalisation gives the red back
    assert cam.image.getpixel((5, 5))[2] > 240


def test_bad_class_index_and_headless_model(model: torch.nn.Module, photo: Image.Image) -> None:
    with pytest.raises(ValueError, match="out of range"):
        class_activation_map(photo, model, class_index=1000)
    with pytest.raises(ValueError, match="linear classifier"):
        class_activation_map(photo, effnet.create_model(MODEL, num_classes=0))


def test_overlay_blends() -> None:
    image = Image.new("RGB", (4, 4), (0, 0, 0))
    heat = np.zeros((4, 4))
    heat[0, 0] = 1.0
    out = np.asarray(overlay(image, heat, "gray", alpha=0.5))
    assert tuple(out[0, 0]) == (128, 128, 128) and tuple(out[3, 3]) == (0, 0, 0)


def test_save_cam_writes_png(model: torch.nn.Module, photo: Image.Image, tmp_path: Path) -> None:
    save_cam(class_activation_map(photo, model), str(tmp_path / "cam.png"))
    with Image.open(tmp_path / "cam.png") as png:
        assert png.format == "PNG" and png.size[0] > 400


def test_cli_cam(tmp_path: Path, photo: Image.Image, capsys: pytest.CaptureFixture[str]) -> None:
    photo.save(tmp_path / "photo.jpg")
    out = tmp_path / "cam.png"
    assert main(["cam", str(tmp_path / "photo.jpg"), "--model", MODEL, "--class-index", "3", "--out", str(out)]) == 0
    assert out.exists() and "CAM of class 3" in capsys.readouterr().out
    (tmp_path / "text.jpg").write_text("not a photo")
    assert main(["cam", str(tmp_path / "text.jpg"), "--model", MODEL, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "text file" in err
    assert main(["cam", str(tmp_path / "photo.jpg"), "--model", MODEL, "--class-index", "5000",
                 "--out", str(out)]) == 2
    assert "out of range" in capsys.readouterr().err
    assert main(["cam", str(tmp_path / "photo.jpg"), "--model", MODEL, "--out", str(tmp_path / "no" / "x.png")]) == 2
    assert "cannot write" in capsys.readouterr().err


@requires_weights
def test_real_cam_looks_at_the_cup() -> None:
    skimage_data = require("skimage.data")
    lite0 = effnet.create_model("efficientnet_lite0", weights="lite0.official")
    cam = class_activation_map(Image.fromarray(skimage_data.coffee()), lite0)
    assert cam.class_name == "espresso"
    # The cup fills the middle of the crop; the table edges hold far less evidence.
    h, w = cam.heatmap.shape
    centre = cam.heatmap[h // 4: 3 * h // 4, w // 4: 3 * w // 4].mean()
    border = np.concatenate([cam.heatmap[:h // 8].ravel(), cam.heatmap[-h // 8:].ravel()]).mean()
    assert centre > border


def test_cam_of_a_grey_model(photo: Image.Image, tmp_path: Path) -> None:
    """A Fashion-MNIST network sees one grey plane: the colour photo is turned grey by its
    preprocessing, and the input as seen comes back as a (grey) RGB picture to draw on."""
    torch.manual_seed(0)
    grey = effnet.create_model("fmnist_s0").eval()
    cam = class_activation_map(photo, grey)
    assert cam.image.mode == "RGB" and cam.image.size == (28, 28) and cam.heatmap.shape == (28, 28)
    pixels = np.asarray(cam.image)
    assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()
    save_cam(cam, str(tmp_path / "grey.png"))
    assert (tmp_path / "grey.png").read_bytes()[:4] == b"\x89PNG"
