"""Explain (KServe's name for it): the class activation map of an upload over the crop the
model saw, as a PNG. It runs the PyTorch model, so it runs as a job on the inference thread,
in its turn between batches (``Predict.call``)."""

from __future__ import annotations

import functools
import io
from collections.abc import Callable

from PIL import Image
from torch import nn

from ..cam import class_activation_map, overlay


class Explain:
    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.num_classes = int(getattr(model, "num_classes", 0))

    def check(self, class_index: int | None) -> None:
        """Raises ValueError for a class the model does not have, before any work is spent."""
        if class_index is not None and not 0 <= class_index < self.num_classes:
            raise ValueError(f"class index {class_index} is out of range: this model has classes "
                             f"0..{self.num_classes - 1}")

    def job(self, image: Image.Image, class_index: int | None) -> Callable[[], bytes]:
        """The CAM of ``image`` as a job for ``Predict.call``."""
        return functools.partial(self._png, image, class_index)

    def _png(self, image: Image.Image, class_index: int | None) -> bytes:
        cam = class_activation_map(image, self.model, class_index, device="cpu")
        buffer = io.BytesIO()
        overlay(cam.image, cam.heatmap).save(buffer, format="PNG")
        return buffer.getvalue()
