"""A model exported to ONNX once and kept: what ``effnet predict --runtime onnx|openvino`` (and
serve) run. Exports are cached under ``$EFFNET_CACHE/onnx`` by a content hash of the weights, so the
next run starts at once; the cache is bounded (least recently used files go first), and a
model whose weights were never saved (random initialisation) is exported to a temporary file
instead, since its hash can never come back.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from torch import nn

from .._cache import cache_dir
from ..atomic import atomic_path
from ..data.transforms import input_size
from ..spec_json import spec_to_dict
from .export import export_model
from .openvino import OpenVinoModel, require_openvino
from .runtime import OnnxModel, require_onnxruntime

# Enough for a few models at a few sizes; B0 is 21 MB, B7 256 MB.
MAX_CACHED_FILES = 16
MAX_CACHE_BYTES = 2 * 2**30


def model_fingerprint(model: nn.Module, resolution: int) -> str:
    """A content hash of the weights, buffers, architecture and export size: a cached
    export is reused only for the very same model."""
    digest = hashlib.sha256(f"{type(model).__name__}|{resolution}|".encode())
    spec = getattr(model, "spec", None)
    if spec is not None:
        digest.update(repr(sorted(spec_to_dict(spec).items())).encode())
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


def prune_cache(folder: Path, *, max_files: int = MAX_CACHED_FILES, max_bytes: int = MAX_CACHE_BYTES,
                keep: Path | None = None) -> list[Path]:
    """Delete the least recently used exports until at most ``max_files`` files and
    ``max_bytes`` remain (``keep`` stays whatever its age); returns what was deleted."""
    files = sorted((p for p in folder.glob("*.onnx") if p.is_file()), key=lambda p: p.stat().st_mtime, reverse=True)
    kept_bytes, kept, removed = 0, 0, []
    for path in files:
        size = path.stat().st_size
        if path == keep or (kept < max_files and kept_bytes + size <= max_bytes):
            kept, kept_bytes = kept + 1, kept_bytes + size
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _export_to(model: nn.Module, path: Path, resolution: int) -> None:
    """Export under a temporary name and rename: an interrupted export leaves no file."""
    with atomic_path(path) as partial:
        # export_model folds BN into a copy: ``model`` itself is left as it was.
        export_model(model, partial, format="onnx", resolution=resolution)


@contextmanager
def cached_onnx(model: nn.Module, *, resolution: int | None = None, cache: bool = True,
                folder: str | Path | None = None) -> Iterator[Path]:
    """The path of ``model`` exported to ONNX (BN folded, constant SAME pads for
    ``resolution``, any batch), for a runtime to load inside the ``with`` block.

    ``resolution`` defaults to the model's input size (:func:`effnet.data.transforms.input_size`),
    the only size its eval transform produces. ``cache=False`` (weights that were never
    saved) exports to a temporary file, deleted when the block ends (runtimes hold the graph
    in memory once loaded).
    """
    resolution = resolution or input_size(model)
    if not cache:
        with tempfile.TemporaryDirectory(prefix="effnet-onnx-") as tmp:
            path = Path(tmp) / "model.onnx"
            _export_to(model, path, resolution)
            yield path
        return
    folder = Path(folder) if folder is not None else cache_dir() / "onnx"
    name = getattr(getattr(model, "spec", None), "name", type(model).__name__)
    path = folder / f"{name}-{resolution}px-{model_fingerprint(model, resolution)}.onnx"
    if path.is_file():
        path.touch()  # recently used: the last to be pruned
    else:
        folder.mkdir(parents=True, exist_ok=True)
        _export_to(model, path, resolution)
        prune_cache(folder, keep=path)
    yield path


def onnx_model_for(model: nn.Module, *, resolution: int | None = None, threads: int | None = None,
                   cache: bool = True, folder: str | Path | None = None, spin: bool = True) -> OnnxModel:
    """``model`` exported to ONNX (:func:`cached_onnx`) and loaded in onnxruntime, keeping
    its preprocessing and class names."""
    require_onnxruntime()  # fail before exporting when onnxruntime is missing
    with cached_onnx(model, resolution=resolution, cache=cache, folder=folder) as path:
        return OnnxModel(path, model, threads=threads, spin=spin)


def openvino_model_for(model: nn.Module, *, resolution: int | None = None, threads: int | None = None,
                       cache: bool = True, folder: str | Path | None = None, precision: str = "f32") -> OpenVinoModel:
    """``model`` exported to ONNX (:func:`cached_onnx`, the same cached file) and compiled by
    OpenVINO's CPU plugin at ``precision``, keeping its preprocessing and class names."""
    require_openvino()
    with cached_onnx(model, resolution=resolution, cache=cache, folder=folder) as path:
        return OpenVinoModel(path, model, threads=threads, precision=precision)


__all__ = ["MAX_CACHED_FILES", "MAX_CACHE_BYTES", "cached_onnx", "model_fingerprint", "onnx_model_for",
           "openvino_model_for", "prune_cache"]
