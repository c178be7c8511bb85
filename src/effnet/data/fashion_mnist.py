"""Fashion-MNIST (Xiao et al. 2017): 60,000 train / 10,000 test greyscale 28x28 images of
10 kinds of clothing, stored as four gzip IDX files.

Where the files come from, in order: the ``root`` you pass (``--data-dir``), the
``EFFNET_FASHION_MNIST`` environment variable, the Debian package ``dataset-fashion-mnist``
(``/usr/share/datasets/fashion-mnist``), then, with ``download=True``, the official URLs
(checked against the MD5 sums that torchvision also uses).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import urllib.request
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..atomic import atomic_path

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
OFFICIAL_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
ENV_VAR = "EFFNET_FASHION_MNIST"
CACHE_DIR = Path.home() / ".cache" / "effnet" / "fashion-mnist"
# split -> (images file, labels file); MD5 of the official .gz files.
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
# IDX type byte -> numpy dtype (big-endian on disk), from LeCun's format description.
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class DatasetNotFoundError(FileNotFoundError):
    """The data files are not where we looked; the message lists the places and the fixes."""


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (gzip or raw): magic ``0 0 TYPE NDIM``, NDIM big-endian int32 sizes,
    then the data."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:  # type: ignore[operator]
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4]!r})")
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    ndim = data[3]
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - offset != expected:
        raise ValueError(f"{path} is truncated or corrupt: header says shape {shape} "
                         f"({expected} bytes) but {len(data) - offset} bytes follow")
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def _has_files(directory: Path) -> bool:
    return all((directory / name).is_file() or (directory / name[:-3]).is_file()
               for pair in FILES.values() for name in pair)


def find_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The first directory that holds all four files (``.gz`` or unpacked)."""
    candidates = [Path(root)] if root is not None else []
    if root is None and os.environ.get(ENV_VAR):
        candidates.append(Path(os.environ[ENV_VAR]))
    if root is None:
        candidates.append(DEBIAN_DIR)
    for candidate in candidates:
        if _has_files(candidate):
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise DatasetNotFoundError(
        f"Fashion-MNIST files not found (looked in {looked}). Install them with "
        f"`apt-get install dataset-fashion-mnist`, point --data-dir at a folder holding "
        f"{', '.join(MD5)}, or download them (download=True / data.download=true)."
    )


def _md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download(root: str | os.PathLike[str], base_url: str | None = None, *,
             check_md5: bool = True, timeout: float = 60.0) -> Path:
    """Fetch the four official files into ``root`` (skipping ones already there), each
    written to a temporary file and moved into place only once its MD5 matches.
    ``base_url`` defaults to the official site; any ``http(s)://`` or ``file://`` URL works."""
    base_url = base_url or OFFICIAL_URL
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for name, md5 in MD5.items():
        target = root / name
        if target.is_file() and (not check_md5 or _md5(target) == md5):
            continue
        url = base_url.rstrip("/") + "/" + name
        with atomic_path(target) as tmp:
            with tmp.open("wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                shutil.copyfileobj(response, out)
            if check_md5 and (got := _md5(tmp)) != md5:
                raise OSError(f"{url} downloaded with MD5 {got}, expected {md5}; the file is "
                              "corrupt or the mirror changed. Try again or fetch it by hand.")
    return root


def _ensure_downloaded(root: str | os.PathLike[str] | None) -> Path:
    """``root`` if it holds the files; else the first place that does; else download."""
    if root is None:
        try:
            return find_root(None)
        except DatasetNotFoundError:
            root = CACHE_DIR
    if not _has_files(Path(root)):
        download(root)
    return Path(root)


def _load(directory: Path, name: str) -> np.ndarray:
    packed, unpacked = directory / name, directory / name[:-3]
    return read_idx(packed if packed.is_file() else unpacked)


class FashionMNIST(Dataset):
    """Fashion-MNIST as a map-style dataset of ``(image, label)``.

    ``image`` is a ``uint8`` tensor of shape ``(channels, 28, 28)`` (``channels=3`` repeats
    the grey plane, for networks built for RGB), passed through ``transform`` if given.
    ``images`` and ``targets`` hold the whole split as tensors.
    """

    classes = CLASSES

    def __init__(self, root: str | os.PathLike[str] | None = None, split: str = "train",
                 transform=None, *, channels: int = 1, download: bool = False) -> None:  # type: ignore[no-untyped-def]
        if split not in FILES:
            raise ValueError(f"split must be one of {tuple(FILES)}, got {split!r}")
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 (grey) or 3 (grey repeated to RGB), got {channels}")
        if download:
            root = _ensure_downloaded(root)
        directory = find_root(root)
        images, labels = (_load(directory, name) for name in FILES[split])
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{directory}: {images.shape[0]} images but {labels.shape[0]} labels")
        self.root = directory
        self.split = split
        self.channels = channels
        self.transform = transform
        self.images = torch.from_numpy(images.copy()).unsqueeze(1)  # (N, 1, 28, 28) uint8
        self.targets = torch.from_numpy(labels.astype(np.int64))

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        if self.channels == 3:
            image = image.expand(3, -1, -1).contiguous()
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.targets[index])


__all__ = ["CLASSES", "DatasetNotFoundError", "FashionMNIST", "OFFICIAL_URL", "download", "find_root", "read_idx"]
