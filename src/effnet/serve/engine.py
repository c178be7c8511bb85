"""The inference engine: the model loaded in the runtime ``--runtime`` chooses (onnxruntime,
OpenVINO, ExecuTorch or PyTorch) with its threads, and one call from a batch of preprocessed images to
logits. Used by the local server's predict step and by each Ray Serve model replica."""

from __future__ import annotations

import os
import threading

import torch
from torch import nn

from ..data.transforms import input_size
from ..deploy.runtime_choice import choose_runtime, runtime_model
from ..device import resolve_device


class InferenceEngine:
    def __init__(self, model: nn.Module, *, runtime: str = "auto", device: str | None = None, threads: int = 0,
                 cache: bool = True, spin: bool = False, batch: int = 8) -> None:
        self.device = resolve_device(device)
        self.threads = threads or os.cpu_count() or 1
        deployed = getattr(model, "runtime_name", None)  # already in its runtime (--accuracy-budget)
        chosen = "torch" if deployed else choose_runtime(runtime, self.device)
        if chosen in ("torch", "auto"):
            torch.set_num_threads(self.threads)
        # spin=False: between batches onnxruntime's threads sleep instead of busy-waiting, so the
        # event loop and the decoders get the cores (measured in docs/serve.md). auto: the
        # fastest runtime measured at the largest batch (``batch``).
        self.model = model if deployed else runtime_model(model, chosen, cache=cache, threads=self.threads, spin=spin,
                                                          batch=batch)
        self.choice = getattr(self.model, "runtime_choice", None)
        self.runtime = deployed or (self.choice.runtime if self.choice is not None else chosen)
        if self.runtime == "torch" and not deployed:
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


def yield_to_requests(steps: int = 15) -> None:
    """Lower the calling thread's priority by ``steps`` nice levels (Linux: a thread is a
    task with its own nice value; runtime threads it starts inherit it). A server computes
    batches on such a thread so that, under overload, its event loop still answers at once:
    429s, readiness and admission never wait behind a batch."""
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + steps))
    except (AttributeError, OSError):  # not Linux, or not allowed: priorities stay equal
        pass
