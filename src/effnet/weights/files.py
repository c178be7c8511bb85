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

from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..atomic import write_atomic
from ..preprocessing import Preprocessing
from ..spec_json import spec_from_dict
from .errors import WeightsError
from .metadata import WeightsMeta
from .run_folder import RunFolder, trained_model_meta

SAFETENSORS_SUFFIXES = (".safetensors",)
PICKLE_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt")
# Training checkpoints often wrap the state dict; these are the usual names for it.
_WRAPPERS = ("state_dict", "model", "model_state_dict", "state_dict_ema", "model_ema")
# What a training checkpoint of effnet.train (RUN/last.pt) holds besides tensors.
_RUN_CHECKPOINT_KEYS = ("model", "spec", "config", "classes", "preprocessing")


def read_weights(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], WeightsMeta | None]:
    """The state dict of a file (on the CPU) and its effnet metadata (None if it has none).

    A training checkpoint of ``effnet train`` (``last.pt``) gives its EMA weights when it has
    them, else its raw weights, with the network, classes and preprocessing it recorded.
    """
    path = Path(path)
    if path.is_dir():
        path = RunFolder(path).trained_model()
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return _read_safetensors(path)
    if suffix in PICKLE_SUFFIXES:
        data = load_pickle(path)
        if isinstance(data, Mapping) and all(key in data for key in _RUN_CHECKPOINT_KEYS):
            return _run_checkpoint_weights(data, path)
        return _unwrap(data, path), None
    raise WeightsError(f"weights file {path} has an unknown type {suffix!r}; effnet reads "
                       f"{', '.join(SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES)} files and run folders")


def save_weights(path: str | os.PathLike[str], state_dict: Mapping[str, torch.Tensor],
                 meta: WeightsMeta | None = None) -> Path:
    """Write a state dict (and its metadata) as ``.safetensors``."""
    path = Path(path)
    if path.suffix.lower() not in SAFETENSORS_SUFFIXES:
        raise WeightsError(f"effnet writes weights as .safetensors; name the file {path.with_suffix('.safetensors')}")
    # safetensors refuses views that share memory; contiguous CPU copies always work.
    tensors = {key: value.detach().cpu().contiguous() for key, value in state_dict.items()}
    metadata = meta.to_safetensors() if meta is not None else None
    return write_atomic(path, lambda partial: save_file(tensors, str(partial), metadata=metadata))


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], WeightsMeta | None]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            metadata = handle.metadata()
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError) as error:
        raise WeightsError(f"{path} is not a readable safetensors file ({_first_line(error)})") from None
    return tensors, WeightsMeta.from_safetensors(metadata)


def load_pickle(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)``: tensors and plain containers only, never code;
    every failure is a WeightsError that says whether the file was refused or unreadable."""
    path = Path(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        text = str(error)
        code = re.search(r"GLOBAL (\S+)", text)
        if code:
            raise WeightsError(
                f"refused: loading {path} would run code ({code.group(1)}); it holds Python objects, not just "
                "tensors. effnet opens pickles only with torch.load(weights_only=True); if you trust the file, "
                "load it yourself and save its state dict as .safetensors") from None
        detail = next((line.strip() for line in text.splitlines() if "Unsupported" in line), _first_line(error))
        raise WeightsError(
            f"{path} is not a readable torch.save file of tensors ({detail}): it is damaged, or a pickle of other "
            "objects, which effnet refuses to unpickle (that could run code). Save its state dict with torch.save "
            "or as .safetensors") from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError) as error:
        # A text file or a truncated download: torch's legacy reader fails with KeyError and friends.
        raise WeightsError(f"{path} is not a readable PyTorch weights file (damaged, or not written by "
                           f"torch.save: {type(error).__name__} {_first_line(error)})") from None


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _run_checkpoint_weights(data: Mapping[str, Any], path: Path) -> tuple[dict[str, torch.Tensor], WeightsMeta]:
    """The trained model inside a training checkpoint of ``effnet train``."""
    ema = data.get("ema")
    if isinstance(ema, Mapping):
        # torch.optim.swa_utils.AveragedModel: the averaged network lives behind "module.".
        state = {key.removeprefix("module."): value for key, value in ema.items() if key.startswith("module.")}
        which = "EMA"
    else:
        state, which = dict(data["model"]), "raw"
    try:
        spec = spec_from_dict(data["spec"])
        preprocessing = Preprocessing.from_dict(data["preprocessing"])
        classes = tuple(str(name) for name in data["classes"])
    except (KeyError, TypeError, ValueError) as error:
        raise WeightsError(f"{path} looks like an effnet training checkpoint but its metadata is damaged "
                           f"({_first_line(error)})") from None
    meta = trained_model_meta(spec, classes=classes, preprocessing=preprocessing,
                              source=f"effnet train checkpoint {path} ({which} weights, epoch {data.get('epoch')})",
                              provenance={"config": data["config"], "epochs": data.get("epoch"), "weights": which})
    return state, meta


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
