"""Preprocess: a request's input -> the rows the model takes. Encoded images are decoded (the
rules of ``effnet predict``: EXIF orientation, alpha on white, decompression bombs refused),
resized and normalised as the weights' preprocessing says, on a small thread pool beside the
inference thread; a tensor sent already preprocessed is checked against the input shape.
Bad input raises ImageError or ProtocolError here, before it could join (and fail) a batch."""

from __future__ import annotations

import asyncio
import functools
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..data.images import decode_image
from ..data.transforms import input_size, model_input, preprocessing_for, transforms_for
from .metrics import Metrics
from .protocol import ProtocolError


class Preprocess:
    def __init__(self, model: nn.Module, *, name: str, max_pixels: int, threads: int, metrics: Metrics) -> None:
        self.name = name
        self.max_pixels = max_pixels
        self.metrics = metrics
        self.transform = transforms_for(model)
        self.preprocessing = preprocessing_for(model)
        spec = getattr(model, "spec", None)
        size = input_size(model)
        self.input_shape = (spec.in_chans if spec is not None else 3, size, size)
        # Pillow releases the GIL while it decodes and resizes, so a few threads decode beside
        # the one that computes batches.
        self.executor = ThreadPoolExecutor(max(2, threads), thread_name_prefix="effnet-decode")

    async def images(self, images: list[bytes], names: list[str] | None = None) -> list[torch.Tensor]:
        """Each encoded image decoded, resized and normalised (C x H x W), all at once."""
        loop = asyncio.get_running_loop()
        start = time.perf_counter()
        labels = names or [f"image {i}" for i in range(len(images))]
        rows = await asyncio.gather(*(loop.run_in_executor(self.executor, self._prepare, data, label)
                                      for data, label in zip(images, labels)))
        self.metrics.preprocess_seconds.observe(time.perf_counter() - start)
        return list(rows)

    def _prepare(self, data: bytes, name: str) -> torch.Tensor:
        return model_input(decode_image(data, name=name, max_pixels=self.max_pixels), self.transform)

    def tensor(self, tensor: np.ndarray) -> list[torch.Tensor]:
        """The rows of an FP32 N x C x H x W tensor, once its shape is the model's input's."""
        if tuple(tensor.shape[1:]) != self.input_shape:
            raise ProtocolError(f"input must have shape [N, {', '.join(map(str, self.input_shape))}] (the model's "
                                f"preprocessing, see GET /v2/models/{self.name}), got {list(tensor.shape)}")
        return list(torch.from_numpy(np.ascontiguousarray(tensor, dtype=np.float32)))

    async def image(self, data: bytes) -> Image.Image:
        """One upload decoded, not resized (what a class activation map starts from)."""
        decode = functools.partial(decode_image, data, name="upload", max_pixels=self.max_pixels)
        return await asyncio.get_running_loop().run_in_executor(self.executor, decode)

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
