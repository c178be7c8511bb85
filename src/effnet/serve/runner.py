"""The model as a server computes it: a runtime (onnxruntime or PyTorch, as ``--runtime``
chooses), its threads, and one call from a batch of preprocessed images to logits. Used by
the local service and by each Ray Serve model replica."""

from __future__ import annotations

import os

import torch
from torch import nn

from ..data.transforms import input_size
from ..deploy.runtime_choice import choose_runtime, runtime_model
from ..device import resolve_device


class BatchRunner:
    def __init__(self, model: nn.Module, *, runtime: str = "auto", device: str | None = None, threads: int = 0,
                 cache: bool = True) -> None:
        self.device = resolve_device(device)
        self.threads = threads or os.cpu_count() or 1
        self.runtime = choose_runtime(runtime, self.device)
        if self.runtime == "torch":
            torch.set_num_threads(self.threads)
        self.model = runtime_model(model, self.runtime, cache=cache, threads=self.threads)
        if self.runtime == "torch":
            self.model.to(self.device)
        spec = getattr(model, "spec", None)
        self.input_shape = (spec.in_chans if spec is not None else 3, input_size(model), input_size(model))
        self.num_classes = int(getattr(model, "num_classes", 0))

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(images.to(self.device)).float().cpu()

    def check(self) -> None:
        """Raises unless one image gives finite logits of the right shape (a health check)."""
        logits = self(torch.zeros(1, *self.input_shape))
        if logits.shape != (1, self.num_classes) or not torch.isfinite(logits).all():
            raise RuntimeError(f"the model gave non-finite or misshapen logits {tuple(logits.shape)}")
