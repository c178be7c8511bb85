"""Reading and writing weights files, safely.

``.safetensors`` is effnet's format: plain tensors plus a JSON metadata string, nothing
that can run code. ``.pth``/``.pt``/``.bin`` files are pickles; they are only ever opened
with ``torch.load(..., weights_only=True)``, which refuses anything but tensors and plain
containers, so a crafted file cannot execute code here.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path

import torch

from .errors import WeightsError
from .metadata import WeightsMeta

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
# Training checkpoints often wrap the state dict; these are the usual names for it.
_WRAPPERS = ("state_dict", "model", "model_state_dict", "state_dict_ema", "model_ema")


def read_weights(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], WeightsMeta | None]:
    """The state dict of a file (on the CPU) and its effnet metadata (None if it has none)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return _read_safetensors(path)
    if suffix in PICKLE_SUFFIXES:
        return _read_pickle(path), None
    raise WeightsError(f"weights file {path} has an unknown type {suffix!r}; effnet reads "
                       f"{', '.join(SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES)}")


def save_weights(path: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor],
                 meta: WeightsMeta | None = None) -> Path:
    """Write a state dict (and its metadata) as ``.safetensors``."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES:
        raise WeightsError(f"effnet writes weights as .safetensors; name the file {path.with_suffix('.safetensors')}")
    # safetensors refuses views that share memory; contiguous CPU copies always work.
    tensors = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path), metadata=meta.to_safetensors() if meta is not None else None)
    return path


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], WeightsMeta | None]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata()
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError) as error:
        raise WeightsError(f"{path} is not a readable safetensors file ({error})") from None
    return tensors, WeightsMeta.from_safetensors(metadata)


def _read_pickle(path: Path) -> dict[str, torch.Tensor]:
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        code = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        if code:
            raise WeightsError(
                f"refused to load {path}: it asks to run Python code ({code.group(1)}), not just to hold tensors. "
                "effnet opens pickles only with torch.load(weights_only=True), which never runs code; if you "
                "trust the file, load it yourself and save its state dict as .safetensors"
            ) from None
        raise WeightsError(f"{path} is not a readable PyTorch weights file (damaged, or not a torch.save "
                           "file)") from None
    except (RuntimeError, EOFError, OSError, ValueError) as error:
        raise WeightsError(f"{path} is not a readable PyTorch weights file ({error})") from None
    return _unwrap(data, path)


def _unwrap(data: object, path: Path) -> dict[str, torch.Tensor]:
    for key in _WRAPPERS:
        if isinstance(data, Mapping) and isinstance(data.get(key), Mapping):
            data = data[key]
            break
    if not isinstance(data, Mapping) or not data:
        raise WeightsError(f"{path} holds no state dict (a mapping of names to tensors)")
    tensors = {str(k): v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"{path} holds no tensors")
    # nn.DataParallel and DistributedDataParallel save every name behind "module.".
    if all(key.startswith("module.") for key in tensors):
        tensors = {key[len("module."):]: value for key, value in tensors.items()}
    return tensors
