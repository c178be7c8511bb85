"""Image loading: every kind of file a folder of user photos can hold becomes RGB or one
``ImageError`` line. The bad-file corpus is built here and reused by test_predict.py."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from effnet.data.images import ImageError, limit_aspect, load_image, to_rgb


def _patch_png_size(data: bytes, width: int, height: int) -> bytes:
    """A PNG whose header claims another size (with a valid CRC): a decompression bomb in
    a few bytes."""
    out = bytearray(data)
    out[16:24] = struct.pack(">II", width, height)  # IHDR data starts after signature, length, type
    out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])))
    return bytes(out)


def _patch_jpeg_size(data: bytes, width: int, height: int) -> bytes:
    """A baseline JPEG whose frame header (SOF0) claims another size."""
    sof = data.index(b"\xff\xc0")
    out = bytearray(data)
    out[sof + 5:sof + 9] = struct.pack(">HH", height, width)  # marker, length(2), precision(1)
    return bytes(out)


def build_corpus(folder: Path) -> dict[str, bool]:
    """Write the corpus of bad image files into ``folder``: file name -> readable?"""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    photo.save(folder / "good.jpg", quality=90)
    jpeg = (folder / "good.jpg").read_bytes()
    expected: dict[str, bool] = {"good.jpg": True}

    def write(name: str, data: bytes, ok: bool) -> None:
        (folder / name).write_bytes(data)
        expected[name] = ok

    write("truncated.jpg", jpeg[: len(jpeg) // 2], False)
    write("corrupt_header.jpg", jpeg[:2] + b"\xff" * 40 + jpeg[42:], False)
    write("empty.jpg", b"", False)
    write("text.jpg", b"this is a text file, not a photo\n", False)
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[:16] = (255, 0, 0, 255)  # opaque red top half, fully transparent bottom half
    Image.fromarray(rgba).save(folder / "rgba.png")
    expected["rgba.png"] = True
    palette = Image.new("P", (32, 32), 0)
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    palette.paste(1, (0, 0, 32, 16))
    palette.save(folder / "palette.png", transparency=0)
    expected["palette.png"] = True
    Image.fromarray(np.full((32, 32), 65535, np.uint16)).save(folder / "gray16.png")
    expected["gray16.png"] = True
    Image.new("CMYK", (32, 32), (0, 255, 255, 0)).save(folder / "cmyk.jpg")  # red in CMYK
    expected["cmyk.jpg"] = True
    for mode in ("L", "LA", "1"):
        Image.new(mode, (32, 32), 255 if mode != "LA" else (255, 255)).save(folder / f"gray_{mode}.png")
        expected[f"gray_{mode}.png"] = True
    Image.new("RGB", (1, 1), (10, 200, 30)).save(folder / "one_pixel.png")
    expected["one_pixel.png"] = True
    Image.new("RGB", (3000, 2), (0, 128, 0)).save(folder / "strip.png")
    expected["strip.png"] = True
    write("huge.jpg", _patch_jpeg_size(jpeg, 60_000, 60_000), False)  # 3.6 gigapixels claimed
    one = folder / "_one.png"
    Image.new("RGB", (1, 1)).save(one)
    write("huge.png", _patch_png_size(one.read_bytes(), 100_000, 100_000), False)
    one.unlink()
    return expected


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    build_corpus(folder)
    return folder


def test_every_corpus_file_is_rgb_or_one_line_error(tmp_path: Path) -> None:
    corpus = tmp_path
    expected = build_corpus(corpus)
    assert sorted(expected) == sorted(p.name for p in corpus.iterdir())
    for name, ok in expected.items():
        if ok:
            image = load_image(corpus / name)
            assert image.mode == "RGB", name
        else:
            with pytest.raises(ImageError) as info:
                load_image(corpus / name)
            message = str(info.value)
            assert name in message and "\n" not in message, message


@pytest.mark.parametrize(("name", "words"), [
    ("truncated.jpg", "truncated"), ("empty.jpg", "empty"), ("text.jpg", "text file"),
    ("huge.png", "too large"), ("huge.jpg", "too large"), ("corrupt_header.jpg", "not an image"),
])
def test_errors_say_what_is_wrong(corpus: Path, name: str, words: str) -> None:
    with pytest.raises(ImageError, match=words):
        load_image(corpus / name)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="not a file"):
        load_image(tmp_path)


def test_transparency_is_composited_on_white(corpus: Path) -> None:
    for name in ("rgba.png", "palette.png"):
        image = np.asarray(load_image(corpus / name))
        assert tuple(image[30, 5]) == (255, 255, 255), name  # transparent half
        assert tuple(image[2, 5]) in ((255, 0, 0), (0, 0, 255)), name  # opaque half keeps its colour
    half = Image.new("RGBA", (2, 2), (0, 0, 0, 128))
    assert to_rgb(half).getpixel((0, 0)) == (127, 127, 127)  # half black over white


def test_16_bit_is_scaled_not_clipped(corpus: Path) -> None:
    assert load_image(corpus / "gray16.png").getpixel((0, 0)) == (255, 255, 255)
    ramp = np.array([[0, 257 * 100, 32896, 65535]], dtype=np.uint16)
    image = to_rgb(Image.fromarray(ramp))
    assert [image.getpixel((x, 0))[0] for x in range(4)] == [0, 100, 128, 255]
    # A dark 16-bit pixel must stay dark: Pillow's own convert("L") would make 1000 -> 255.
    as_int = to_rgb(Image.fromarray(np.array([[1000]], dtype=np.int32)))  # mode I (32-bit)
    assert as_int.getpixel((0, 0)) == (4, 4, 4)


def test_cmyk_greyscale_and_bilevel(corpus: Path) -> None:
    red = load_image(corpus / "cmyk.jpg").getpixel((16, 16))
    assert red[0] > 200 and red[1] < 60 and red[2] < 60, red
    for mode in ("L", "LA", "1"):
        assert load_image(corpus / f"gray_{mode}.png").getpixel((3, 3)) == (255, 255, 255), mode


def test_one_pixel_image(corpus: Path) -> None:
    image = load_image(corpus / "one_pixel.png")
    assert image.size == (1, 1) and image.getpixel((0, 0)) == (10, 200, 30)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))  # left half red
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    image.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    loaded = load_image(tmp_path / "rotated.jpg")
    assert loaded.size == (20, 40)
    top = loaded.getpixel((10, 5))
    assert top[0] > 200 and top[2] < 60, top  # the red left half is now on top


def test_huge_jpeg_is_decoded_at_reduced_scale(tmp_path: Path) -> None:
    Image.new("RGB", (400, 300), (200, 100, 50)).save(tmp_path / "big.jpg")
    image = load_image(tmp_path / "big.jpg", max_pixels=20_000)  # 120,000 pixels on disk
    assert image.size == (100, 75)  # libjpeg's 1/4 scale: the mildest that fits
    assert image.mode == "RGB"
    assert load_image(tmp_path / "big.jpg").size == (400, 300)  # under the limit: untouched


def test_huge_png_is_refused_with_sizes(tmp_path: Path) -> None:
    Image.new("RGB", (400, 300)).save(tmp_path / "big.png")
    with pytest.raises(ImageError, match=r"400x300 .* over the 0\.02 megapixel limit"):
        load_image(tmp_path / "big.png", max_pixels=20_000)


def test_limit_aspect_keeps_the_centre() -> None:
    strip = Image.new("RGB", (3000, 2))
    strip.paste((255, 0, 0), (1496, 0, 1504, 2))
    cropped = limit_aspect(strip)
    assert cropped.size == (8, 2)
    assert cropped.getpixel((4, 0)) == (255, 0, 0)
    assert limit_aspect(Image.new("RGB", (640, 480))).size == (640, 480)


def test_lab_goes_through_colour_management() -> None:
    # Pillow's plain convert would read the LAB bytes as RGB: (136, 208, 195) is red in LAB.
    red = to_rgb(Image.new("LAB", (2, 2), (136, 208, 195))).getpixel((0, 0))
    assert red[0] > 230 and red[1] < 30 and red[2] < 30, red


def test_cmyk_with_unreadable_icc_profile_still_loads(tmp_path: Path) -> None:
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "icc.jpg", icc_profile=b"not a profile")
    red = load_image(tmp_path / "icc.jpg").getpixel((4, 4))
    assert red[0] > 200 and red[1] < 60 and red[2] < 60, red
