"""Images for calibrating int8 quantisation and checking its accuracy.

Calibration wants images like the ones the model will see. ``folder_images`` prepares a
user's own photos with the model's eval preprocessing; ``sample_photos`` builds a set from
the photographs bundled with scikit-image (random crops, flips and scales of each), for
tests and benchmarks on a machine with no dataset.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..data.images import IMAGE_EXTENSIONS, load_image
from ..data.transforms import default_preprocessing, eval_transform, preprocessing_for, transforms_for

# scikit-image's colour photographs (not its synthetic or greyscale images).
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry",
                  "retina", "cat", "colorwheel", "logo", "motorcycle_left", "motorcycle_right")


def _transform(model: nn.Module, resolution: int | None):  # type: ignore[no-untyped-def]
    if resolution is None:
        return transforms_for(model)
    if getattr(model, "preprocessing", None) is None:  # no weights metadata: the TF crop at that size
        spec = getattr(model, "spec", None)
        return eval_transform(default_preprocessing(resolution, spec.in_chans if spec is not None else 3))
    return eval_transform(replace(preprocessing_for(model), input_size=resolution))


def _photos() -> list[Image.Image]:
    try:
        from skimage import data
    except ImportError as error:
        raise ImportError("sample photos come from scikit-image; run `pip install scikit-image` or give "
                          "your own images") from error
    photos = []
    for name in SKIMAGE_PHOTOS:
        loader = getattr(data, name, None)
        if loader is None:
            continue
        try:
            array = loader()
        except Exception:  # noqa: BLE001 - some images download on demand; skip those offline
            continue
        if array.ndim == 3 and array.shape[2] >= 3:
            photos.append(Image.fromarray(np.asarray(array[..., :3], dtype=np.uint8)))
    if not photos:
        raise RuntimeError("scikit-image has no colour photos available here; give your own images")
    return photos


def sample_photos(model: nn.Module, count: int, *, resolution: int | None = None, seed: int = 0) -> np.ndarray:
    """``count`` preprocessed images (N, 3, H, W float32): each a random crop (30-100% of the
    short side), maybe mirrored, of a scikit-image photo, then the model's eval transform."""
    transform = _transform(model, resolution)
    rng = np.random.default_rng(seed)
    photos = _photos()
    out = []
    for i in range(count):
        photo = photos[i % len(photos)]
        if i >= len(photos):  # the first pass shows each photo whole
            w, h = photo.size
            side = int(min(w, h) * rng.uniform(0.3, 1.0))
            left, top = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
            photo = photo.crop((left, top, left + side, top + side))
            if rng.random() < 0.5:
                photo = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        out.append(transform(photo))
    return torch.stack(out).numpy()


def folder_images(model: nn.Module, folder: str | Path, *, resolution: int | None = None,
                  limit: int = 256) -> np.ndarray:
    """Up to ``limit`` images from ``folder`` (recursively), prepared for ``model``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"calibration folder {folder} does not exist")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)[:limit]
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) under {folder}")
    transform = _transform(model, resolution)
    return torch.stack([transform(load_image(p)) for p in files]).numpy()
