"""Images in, classes out: top-k predictions for files, folders or PIL images.

Used by ``effnet predict`` and by users directly::

    model = effnet.create_model("efficientnet_lite0", weights="lite0.official")
    for record in predict(["photos/"], model, top_k=3):
        print(record.path, record.error or record.top_k[0].name)

Each image goes through the model's own eval preprocessing (``transforms_for``). A file that
cannot be read gives a record with ``error`` set; it never stops the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Union

import torch
from PIL import Image
from torch import nn

from .data.images import IMAGE_EXTENSIONS, ImageError, load_image, to_rgb
from .data.transforms import model_input, transforms_for
from .device import resolve_device

ImageInput = Union[str, "os.PathLike[str]", Image.Image]


class ClassScore(NamedTuple):
    """One of the top-k classes: its index, its name (``"class 17"`` without class names)
    and its softmax probability."""

    index: int
    name: str
    probability: float


def top_classes(logits: torch.Tensor, k: int, names: Sequence[str] | None = None) -> list[tuple[ClassScore, ...]]:
    """The ``k`` most probable classes of each row of ``logits`` (N x classes), best first:
    what `effnet predict`, the server's ``/classify`` and a CAM's title report."""
    probabilities, indices = logits.float().softmax(dim=1).topk(min(k, logits.shape[1]), dim=1)
    return [tuple(ClassScore(i, names[i] if names else f"class {i}", p) for i, p in zip(row_i, row_p))
            for row_p, row_i in zip(probabilities.tolist(), indices.tolist())]


@dataclass(frozen=True)
class PredictionRecord:
    """The answer for one input: ``top_k`` (best first) or, for an unreadable file, ``error``."""

    path: str
    top_k: tuple[ClassScore, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "top_k": [score._asdict() for score in self.top_k] if self.ok else None,
            "error": self.error,
        }


def expand_inputs(inputs: ImageInput | Iterable[ImageInput]) -> list[tuple[str, ImageInput]]:
    """(label, input) pairs: folders become their image files (recursive, sorted, by
    extension); files, missing paths and PIL images pass through (missing ones fail later,
    one record each)."""
    if isinstance(inputs, (str, os.PathLike, Image.Image)):
        inputs = [inputs]
    items: list[tuple[str, ImageInput]] = []
    for i, item in enumerate(inputs):
        if isinstance(item, Image.Image):
            items.append((getattr(item, "filename", "") or f"<image {i}>", item))
            continue
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            if not found:
                items.append((str(path), path))  # reported as an error: nothing to predict
            items.extend((str(p), p) for p in found)
        else:
            items.append((str(path), path))
    return items


def iter_predictions(inputs: ImageInput | Iterable[ImageInput], model: nn.Module, top_k: int = 5,
                     batch_size: int = 16, device: str | torch.device | None = None,
                     num_workers: int = 2) -> Iterator[PredictionRecord]:
    """Like :func:`predict`, but yields one record at a time, in input order. Arguments are
    checked at the call, not at the first ``next``."""
    num_classes = getattr(model, "num_classes", None)
    if not num_classes:
        raise ValueError("this model has no classifier (num_classes is 0); create it with classes to predict")
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    top_k = min(top_k, num_classes)
    device = resolve_device(device)
    transform = transforms_for(model)
    names = getattr(model, "class_names", None)
    items = expand_inputs(inputs)
    return _predict_batches(items, model, transform, top_k, batch_size, names, device, num_workers)


def _predict_batches(items: list[tuple[str, ImageInput]], model: nn.Module, transform: nn.Module, top_k: int,
                     batch_size: int, names: Sequence[str] | None, device: torch.device,
                     num_workers: int) -> Iterator[PredictionRecord]:
    was_training = model.training
    model.to(device).eval()
    try:
        # Threads decode a batch's files side by side: Pillow releases the GIL while decoding.
        with ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
            for start in range(0, len(items), batch_size):
                batch = items[start:start + batch_size]
                prepared = list(pool.map(lambda item: _prepare(item[1], transform), batch))
                yield from _run_batch(model, batch, prepared, top_k, names, device)
    finally:
        model.train(was_training)


def predict(inputs: ImageInput | Iterable[ImageInput], model: nn.Module, top_k: int = 5,
            batch_size: int = 16, device: str | torch.device | None = None,
            num_workers: int = 2) -> list[PredictionRecord]:
    """Top-k classes for image files, folders (searched recursively) or PIL images.

    The model is moved to ``device`` (default: CUDA when available, else CPU) and run in
    eval mode on batches of ``batch_size``, with its own eval preprocessing. Returns one
    :class:`PredictionRecord` per image, in input order; unreadable files have ``error`` set.
    """
    return list(iter_predictions(inputs, model, top_k, batch_size, device, num_workers))


def _prepare(item: ImageInput, transform: nn.Module) -> torch.Tensor | str:
    """The model input for one image, or the one-line reason it has none."""
    if isinstance(item, Path) and item.is_dir():
        return f"{item}: folder holds no image files ({' '.join(IMAGE_EXTENSIONS)})"
    try:
        image = to_rgb(item) if isinstance(item, Image.Image) else load_image(item)
    except ImageError as error:
        return str(error)
    try:
        return model_input(image, transform)
    except (RuntimeError, ValueError) as error:  # the image decoded but cannot be resized/cropped
        return f"{getattr(item, 'filename', '') or item}: cannot preprocess this image ({' '.join(str(error).split())})"


def _run_batch(model: nn.Module, batch: Sequence[tuple[str, ImageInput]], prepared: list[torch.Tensor | str],
               top_k: int, names: Sequence[str] | None, device: torch.device) -> Iterator[PredictionRecord]:
    tensors = [x for x in prepared if isinstance(x, torch.Tensor)]
    scores: list[tuple[ClassScore, ...]] = []
    if tensors:
        with torch.inference_mode():
            dtype = next(model.parameters()).dtype  # a half-precision model gets half inputs
            scores = top_classes(model(torch.stack(tensors).to(device, dtype)), top_k, names)
    answers = iter(scores)
    for (label, _), x in zip(batch, prepared):
        if isinstance(x, str):
            yield PredictionRecord(label, error=x)
        else:
            yield PredictionRecord(label, top_k=next(answers))
