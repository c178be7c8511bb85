"""ImageFolder wrapper, the minival split, the train transform and batch augmentation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2 as T

from effnet.data.datasets import Transformed, class_names, image_folder, load_split, minival_split
from effnet.data.transforms import train_transform
from effnet.train.batch_augment import BatchAugment


def make_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for cls, mode in (("cat", "RGB"), ("dog", "L")):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            shape = (20, 24, 3) if mode == "RGB" else (20, 24)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / cls / f"{i}.png")
    return root


def test_image_folder_grey_as_one_or_three_channels(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "photos")
    rgb = image_folder(root, channels=3)
    assert rgb.classes == ["cat", "dog"] and len(rgb) == 6
    grey_as_rgb, label = rgb[4]
    assert label == 1 and grey_as_rgb.mode == "RGB"
    r, g, b = (np.asarray(c) for c in grey_as_rgb.split())
    assert (r == g).all() and (g == b).all()  # the grey plane, repeated
    grey = image_folder(root, channels=1, transform=T.Compose([T.ToImage()]))
    image, label = grey[0]
    assert image.shape == (1, 20, 24) and label == 0


def test_image_folder_errors_speak_to_the_user(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_folder(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="sub-folder"):
        image_folder(tmp_path / "empty")
    root = make_folder(tmp_path / "photos")
    (root / "cat" / "broken.png").write_bytes(b"not a png")
    dataset = image_folder(root)
    broken = [i for i, (path, _) in enumerate(dataset.samples) if path.endswith("broken.png")][0]
    with pytest.raises(ValueError, match="cannot read image .*broken.png"):
        dataset[broken]
    with pytest.raises(ValueError, match="channels"):
        image_folder(root, channels=2)


def test_folder_splits_train_and_test_or_val(tmp_path: Path) -> None:
    make_folder(tmp_path / "data" / "train")
    make_folder(tmp_path / "data" / "val")
    assert len(load_split("folder", "test", tmp_path / "data")) == 6
    with pytest.raises(ValueError, match="data.root"):
        load_split("folder", "train", None)
    with pytest.raises(ValueError, match="unknown dataset"):
        load_split("imagenet", "train", None)


def test_minival_split_is_fixed_disjoint_and_complete() -> None:
    data = list(range(100))
    train, minival = minival_split(data, 25, seed=0)
    assert len(train) == 75 and len(minival) == 25
    assert sorted(train.indices + minival.indices) == data
    again_train, again_minival = minival_split(data, 25, seed=0)
    assert again_minival.indices == minival.indices  # same split every run
    assert minival_split(data, 25, seed=1)[1].indices != minival.indices
    assert len(minival_split(data, 0.1)[1]) == 10
    with pytest.raises(ValueError, match="minival"):
        minival_split(data, 100)


def test_class_names_seen_through_wrappers(tmp_path: Path) -> None:
    root = make_folder(tmp_path / "photos")
    train, _ = minival_split(image_folder(root), 2)
    assert class_names(Transformed(train, None)) == ("cat", "dog")


def test_train_transform_follows_the_official_recipe() -> None:
    transform = train_transform(16, mean=(0.5,), std=(0.5,))
    crop = next(t for t in transform.transforms if isinstance(t, T.RandomResizedCrop))
    assert crop.scale == (0.08, 1.0)
    assert crop.ratio == pytest.approx((3 / 4, 4 / 3))
    assert crop.interpolation == T.InterpolationMode.BICUBIC
    assert any(isinstance(t, T.RandomHorizontalFlip) for t in transform.transforms)
    image = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8)
    out = transform(image)
    assert out.shape == (1, 16, 16) and out.dtype == torch.float32


@pytest.mark.parametrize("auto_augment", ["autoaugment", "randaugment"])
@pytest.mark.parametrize("channels", [1, 3])
def test_auto_augment_on_grey_and_rgb(auto_augment: str, channels: int) -> None:
    transform = train_transform(12, mean=(0.5,) * channels, std=(0.5,) * channels, crop="pad_crop", padding=2,
                                auto_augment=auto_augment)
    assert any(type(t).__name__.lower() == auto_augment for t in transform.transforms)
    torch.manual_seed(0)
    for _ in range(10):
        out = transform(torch.randint(0, 256, (channels, 12, 12), dtype=torch.uint8))
        assert out.shape == (channels, 12, 12)


def test_train_transform_rejects_unknown_choices() -> None:
    with pytest.raises(ValueError, match="crop"):
        train_transform(16, mean=(0.5,), std=(0.5,), crop="zoom")
    with pytest.raises(ValueError, match="auto_augment"):
        train_transform(16, mean=(0.5,), std=(0.5,), auto_augment="trivialaugment")


def test_batch_augment_normalises_pads_with_black_and_flips() -> None:
    images = torch.randint(1, 256, (8, 1, 6, 6), dtype=torch.uint8)
    plain = BatchAugment((0.25,), (0.5,), padding=0, hflip=0.0)
    expected = (images.float() / 255 - 0.25) / 0.5
    torch.testing.assert_close(plain(images, train=False), expected)
    torch.testing.assert_close(plain(images, train=True), expected)
    flip = BatchAugment((0.25,), (0.5,), padding=0, hflip=1.0)
    torch.testing.assert_close(flip(images, train=True), expected.flip(3))
    torch.testing.assert_close(flip(images, train=False), expected)  # eval never augments
    torch.manual_seed(0)
    shifted = BatchAugment((0.25,), (0.5,), padding=2, hflip=0.0)(images, train=True)
    black = (0 - 0.25) / 0.5
    for out, ref in zip(shifted, expected):
        # Every output is a window of the image padded with black: find the offset.
        padded = torch.nn.functional.pad(ref, (2, 2, 2, 2), value=black)
        assert any(torch.allclose(out, padded[:, dy:dy + 6, dx:dx + 6]) for dy in range(5) for dx in range(5))
    assert not torch.allclose(shifted, expected)  # with 8 images some offset is not (2, 2)
