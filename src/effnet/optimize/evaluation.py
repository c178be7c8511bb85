"""What a deployable form is judged on, and the images its int8 forms are calibrated on: never
the same images.

- A training run (``effnet train``'s folder): its own minival split, prepared as its
  validation was. The first ``calibration`` images calibrate; the rest are scored against their
  labels (top-1). The test set is never read.
- Any other model (a registered name, converted weights): images without labels (a folder, or
  crops of the photos that ship with scikit-image). Half calibrate; on the other half a form is
  scored by how often its top-1 class is eager PyTorch fp32's. Agreement bounds the accuracy
  change from below: a form that agrees on 99.7% of images cannot lose more than 0.3 points of
  top-1 on them, whatever the labels.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch import nn

from ..deploy.calibration import folder_images, sample_photos
from ..train.config_files import config_of_run
from ..train.data import build_eval_loader
from ..weights import RunFolder, fetch_weights
from .candidates import Run

# onnxruntime's and NNCF's calibrations settle within a few hundred images (NNCF's default
# subset is 300); more costs memory for entropy and percentile calibration.
CALIBRATION_IMAGES = 256


@dataclass
class Evaluation:
    kind: str                  # "minival top-1" | "top-1 agreement with fp32"
    images: np.ndarray         # what forms are scored on (N, C, H, W float32)
    labels: np.ndarray | None  # None: agreement with the reference form's classes
    calibration: np.ndarray    # what int8 forms are calibrated on, disjoint from ``images``
    source: str                # where the images came from, for the report

    def score(self, run: Run, reference: np.ndarray | None = None, batch: int = 64) -> float:
        """Percent of ``images`` whose top-1 class is the label (or ``reference``'s class)."""
        target = self.labels if self.labels is not None else reference
        if target is None:
            raise ValueError("an evaluation without labels needs the reference form's classes")
        predicted = predictions(run, self.images, batch)
        return float(100.0 * (predicted == target).mean())


def predictions(run: Run, images: np.ndarray, batch: int = 64) -> np.ndarray:
    return np.concatenate([run(images[i:i + batch]).argmax(1) for i in range(0, len(images), batch)])


def is_run(weights: str | os.PathLike[str] | None) -> bool:
    """Whether ``weights`` names a training run (its folder or a file in it)."""
    if weights is None or not Path(weights).exists():
        return False
    folder = RunFolder.of(weights)
    return folder.config.is_file()


def run_minival(run: str | os.PathLike[str], model: nn.Module, *, calibration: int = CALIBRATION_IMAGES,
                limit: int | None = None, data_dir: str | None = None) -> Evaluation:
    """The run's minival split: ``calibration`` images to calibrate, the rest (at most
    ``limit``) to score."""
    loaded = fetch_weights(run)
    provenance = (loaded.meta.provenance if loaded.meta is not None else None) or {}
    config = config_of_run(run, provenance)
    if data_dir:
        config.data = dataclasses.replace(config.data, root=data_dir)
    loader, _ = build_eval_loader(config, "minival", model.preprocessing)
    images, labels = [], []
    for x, y in loader:
        images.append(x.float().numpy())
        labels.append(y.numpy())
    all_images, all_labels = np.concatenate(images), np.concatenate(labels)
    if len(all_images) <= calibration:
        raise ValueError(f"{run}'s minival split has {len(all_images)} images, too few to calibrate on {calibration} "
                         "and score on the rest; train with a larger data.minival")
    end = None if limit is None else calibration + limit
    return Evaluation("minival top-1", all_images[calibration:end], all_labels[calibration:end],
                      all_images[:calibration], f"{run}'s minival split (the {calibration} images that calibrate excluded)")


def unlabelled(model: nn.Module, resolution: int, *, folder: str | None = None, count: int = 128,
               seed: int = 0) -> Evaluation:
    """Images without labels, half to calibrate and half to score by agreement with fp32."""
    images = (folder_images(model, folder, resolution=resolution) if folder
              else sample_photos(model, count, resolution=resolution, seed=seed))
    if len(images) < 2:
        raise ValueError(f"need at least 2 images to calibrate on some and score on others, got {len(images)}")
    half = len(images) // 2
    source = f"images in {folder}" if folder else f"{len(images)} crops of scikit-image's sample photos"
    return Evaluation("top-1 agreement with fp32", images[half:], None, images[:half], source)


__all__ = ["CALIBRATION_IMAGES", "Evaluation", "is_run", "predictions", "run_minival", "unlabelled"]
