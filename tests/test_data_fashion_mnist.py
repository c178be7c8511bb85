"""Fashion-MNIST: the IDX reader, finding the files, the download code (against local
files served over file:// and http://), and the real data from the Debian package."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from effnet.data import fashion_mnist as fm


def write_idx(path: Path, array: np.ndarray, *, compress: bool = True) -> None:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">i4"): 0x0C}
    dtype = np.dtype(">i4") if array.dtype.kind == "i" and array.dtype.itemsize == 4 else np.dtype(array.dtype)
    header = bytes([0, 0, codes[dtype], array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    payload = header + array.astype(dtype).tobytes()
    (gzip.open if compress else open)(path, "wb").write(payload)  # type: ignore[operator]


def make_fake_dataset(root: Path, n_train: int = 12, n_test: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        image_file, label_file = fm.FILES[split]
        write_idx(root / image_file, images)
        write_idx(root / label_file, labels)
        arrays[split] = images
        arrays[split + "_labels"] = labels
    return arrays


def md5s(root: Path) -> dict[str, str]:
    return {name: hashlib.md5((root / name).read_bytes()).hexdigest() for name in fm.MD5}


def test_read_idx_round_trip_gz_and_raw(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a.gz", array)
    write_idx(tmp_path / "a", array, compress=False)
    np.testing.assert_array_equal(fm.read_idx(tmp_path / "a.gz"), array)
    np.testing.assert_array_equal(fm.read_idx(tmp_path / "a"), array)
    ints = np.array([1, -2, 70000], dtype=np.int32)
    write_idx(tmp_path / "i.gz", ints)
    np.testing.assert_array_equal(fm.read_idx(tmp_path / "i.gz"), ints)


def test_read_idx_rejects_bad_and_truncated_files(tmp_path: Path) -> None:
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04rest")
    with pytest.raises(ValueError, match="not an IDX file"):
        fm.read_idx(tmp_path / "bad")
    array = np.zeros((4, 5), dtype=np.uint8)
    write_idx(tmp_path / "ok", array, compress=False)
    (tmp_path / "short").write_bytes((tmp_path / "ok").read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        fm.read_idx(tmp_path / "short")


def test_dataset_from_a_data_dir(tmp_path: Path) -> None:
    arrays = make_fake_dataset(tmp_path)
    grey = fm.FashionMNIST(tmp_path, "train")
    assert len(grey) == 12
    image, label = grey[3]
    assert image.shape == (1, 28, 28) and image.dtype == torch.uint8 and label == 3
    np.testing.assert_array_equal(image[0].numpy(), arrays["train"][3])
    rgb = fm.FashionMNIST(tmp_path, "test", channels=3, transform=lambda x: x.float() / 255)
    image, label = rgb[5]
    assert image.shape == (3, 28, 28) and image.dtype == torch.float32 and label == 5
    assert torch.equal(image[0], image[1]) and torch.equal(image[1], image[2])


def test_missing_files_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(fm.DatasetNotFoundError, match="apt-get install dataset-fashion-mnist"):
        fm.FashionMNIST(tmp_path / "nothing-here")
    with pytest.raises(ValueError, match="split"):
        fm.FashionMNIST(tmp_path, "validation")


def test_download_from_file_url_checks_md5_and_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "mirror"
    make_fake_dataset(source)
    monkeypatch.setattr(fm, "MD5", md5s(source))
    target = tmp_path / "downloaded"
    fm.download(target, source.as_uri())
    assert md5s(target) == fm.MD5
    assert not list(target.glob(".*part"))
    # A corrupt mirror: the MD5 check fails, and nothing half-written is left behind.
    bad = dict(fm.MD5)
    bad["t10k-labels-idx1-ubyte.gz"] = "0" * 32
    monkeypatch.setattr(fm, "MD5", bad)
    (target / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(OSError, match="MD5"):
        fm.download(target, source.as_uri())
    assert not (target / "t10k-labels-idx1-ubyte.gz").exists()
    assert not list(target.glob(".*part"))


def test_download_over_http_through_the_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "mirror"
    arrays = make_fake_dataset(source)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(source))
    handler.log_message = lambda *args: None  # type: ignore[method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setattr(fm, "OFFICIAL_URL", f"http://127.0.0.1:{server.server_address[1]}/")
        monkeypatch.setattr(fm, "MD5", md5s(source))
        dataset = fm.FashionMNIST(tmp_path / "cache", "test", download=True)
    finally:
        server.shutdown()
    assert len(dataset) == 6
    np.testing.assert_array_equal(dataset.images[:, 0].numpy(), arrays["test"])


def test_official_md5_table_names_all_four_files() -> None:
    assert set(fm.MD5) == {name for pair in fm.FILES.values() for name in pair}
    assert fm.OFFICIAL_URL.startswith("http")


@pytest.mark.skipif(not fm.DEBIAN_DIR.is_dir(), reason="apt-get install dataset-fashion-mnist")
def test_real_fashion_mnist_from_the_debian_package() -> None:
    train = fm.FashionMNIST(split="train")
    test = fm.FashionMNIST(split="test")
    assert (len(train), len(test)) == (60000, 10000)
    assert train.images.shape == (60000, 1, 28, 28)
    # Both splits are balanced: 6,000 and 1,000 images per class.
    assert torch.bincount(train.targets).tolist() == [6000] * 10
    assert torch.bincount(test.targets).tolist() == [1000] * 10
    # Known pixel statistics of the training set (mean 0.2860, std 0.3530 on 0..1).
    pixels = train.images.float() / 255
    assert pixels.mean().item() == pytest.approx(0.2860, abs=5e-4)
    assert pixels.std().item() == pytest.approx(0.3530, abs=5e-4)
    assert len(fm.CLASSES) == 10 and fm.CLASSES[9] == "Ankle boot"
