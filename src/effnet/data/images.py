"""Image files in, RGB PIL images out, or one ``ImageError`` line saying what is wrong.

Everything a folder of user photos can hold is turned into 8-bit RGB the way an image viewer
would show it: EXIF orientation applied, transparency composited on white, 16-bit data scaled
(not clipped) to 8 bits, CMYK and greyscale converted. Files that cannot be read, and images
so large that decoding them could exhaust memory, raise :class:`ImageError`.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Suffixes that folder expansion treats as images (compared lower-case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")

# Transparent pixels become white: a cut-out photo (product shot, logo) is meant to be seen on
# a page, and the colour hidden under alpha 0 is arbitrary (often black or garbage).
BACKGROUND = (255, 255, 255)


class ImageError(ValueError):
    """A file that cannot be turned into an RGB image; the message is one line for the user."""


class ImageTooLarge(ImageError):
    """An image over the pixel limit (a server answers 413 for it, not 400)."""


def max_pixels_default() -> int:
    """Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``, about 89 megapixels
    unless the user changed it): about 270 MB once decoded to RGB."""
    return Image.MAX_IMAGE_PIXELS or 2**62


def load_image(path: str | os.PathLike[str], *, max_pixels: int | None = None) -> Image.Image:
    """Open ``path`` as an 8-bit RGB image (see :func:`to_rgb` for the colour rules).

    Images over ``max_pixels`` (default: Pillow's decompression-bomb limit) are decoded at a
    reduced scale when the format allows it without ever holding the full image (JPEG DCT
    scaling through ``Image.draft``: 1/2, 1/4 or 1/8); otherwise they are refused
    (:class:`ImageTooLarge`). Raises :class:`ImageError` with a one-line reason.
    """
    path = Path(path)
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if not path.is_file():
        raise ImageError(f"{path}: not a file")
    if path.stat().st_size == 0:
        raise ImageError(f"{path}: empty file (0 bytes)")
    return _decode(path, str(path), max_pixels, lambda: _head_of(path))


def decode_image(data: bytes, *, name: str = "image", max_pixels: int | None = None) -> Image.Image:
    """:func:`load_image` for bytes in memory (an upload): the same rules and messages, with
    ``name`` in place of the path."""
    if not data:
        raise ImageError(f"{name}: empty body (0 bytes)")
    return _decode(io.BytesIO(data), name, max_pixels, lambda: data[:512])


def _decode(source: Path | io.BytesIO, name: str, max_pixels: int | None, head) -> Image.Image:  # type: ignore[no-untyped-def]
    limit = max_pixels if max_pixels is not None else max_pixels_default()
    try:
        with warnings.catch_warnings():
            # Pillow warns between 1x and 2x its limit; we apply our own limit below instead.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                _shrink_or_refuse(image, name, limit)
                image.load()
                return to_rgb(image, name=name)
    except ImageError:
        raise
    except Image.DecompressionBombError as error:
        # Pillow refuses to open anything over twice its limit before reading pixel data.
        raise ImageTooLarge(f"{name}: image too large to decode safely ({_one_line(error)})") from None
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not an image file Pillow can read ({_sniff(head())})") from None
    except MemoryError:
        raise ImageError(f"{name}: not enough memory to decode this image") from None
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        # Pillow reports truncated and corrupt data as OSError ("image file is truncated",
        # "broken data stream"), some plugins as SyntaxError or ValueError.
        raise ImageError(f"{name}: corrupt or truncated image ({_one_line(error)})") from None


def _shrink_or_refuse(image: Image.Image, name: str, limit: int) -> None:
    width, height = image.size
    if width * height <= limit:
        return
    if image.format == "JPEG":
        # libjpeg can decode at 1/2, 1/4 or 1/8 scale without ever holding the full image;
        # take the mildest of those that fits the limit.
        for scale in (2, 4, 8):
            size = (math.ceil(width / scale), math.ceil(height / scale))
            if size[0] * size[1] <= limit:
                image.draft(image.mode, size)
                return
    raise ImageTooLarge(
        f"{name}: image too large ({width}x{height} = {width * height / 1e6:.3g} megapixels, over the "
        f"{limit / 1e6:.3g} megapixel limit that guards against decompression bombs); downscale it first"
    )


def to_rgb(image: Image.Image, *, name: str = "image") -> Image.Image:
    """Any Pillow image as 8-bit RGB, as a viewer would display it.

    EXIF orientation is applied; alpha (RGBA, LA, PA, palette or RGB with a transparent colour)
    is composited on white; 16- and 32-bit integer greyscale is scaled to 8 bits (Pillow's
    own conversion clips everything above 255 to white); CMYK, YCbCr, greyscale and 1-bit
    images are converted by Pillow (LAB, and CMYK with an ICC profile, through littlecms).
    Multi-frame files (GIF, TIFF) give their first frame.
    """
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # noqa: BLE001 - broken EXIF should cost the orientation, not the image
        pass
    try:
        if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
            image = _scale_to_8bit(image, 65535)
        elif image.mode == "F":
            data = np.asarray(image, dtype=np.float64)
            # Float images have no fixed range: 0..1 is the common convention, else 0..255.
            image = _scale_to_8bit(image, 1.0 if np.nanmax(data, initial=0.0) <= 1.0 else 255.0)
        if image.mode in ("CMYK", "LAB"):
            image = _colour_managed_rgb(image)
        if image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        elif image.mode in ("L", "RGB") and "transparency" in image.info:
            image = image.convert("RGBA" if image.mode == "RGB" else "LA")
        if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
            rgba = image.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
            return Image.alpha_composite(background, rgba).convert("RGB")
        return image.convert("RGB") if image.mode != "RGB" else image
    except (ValueError, OSError) as error:
        raise ImageError(f"{name}: cannot convert colour mode {image.mode} to RGB ({_one_line(error)})") from None


def _colour_managed_rgb(image: Image.Image) -> Image.Image:
    """CMYK and LAB through littlecms: Pillow's plain convert treats LAB bytes as RGB and
    ignores a CMYK file's ICC profile. Falls back to the plain convert for CMYK without one."""
    from PIL import ImageCms

    srgb = ImageCms.createProfile("sRGB")
    if image.mode == "LAB":
        source = ImageCms.createProfile("LAB")
    elif image.info.get("icc_profile"):
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
        except (OSError, ImageCms.PyCMSError):
            return image.convert("RGB")  # an unreadable profile costs accuracy, not the image
    else:
        return image.convert("RGB")
    try:
        transform = ImageCms.buildTransform(source, srgb, image.mode, "RGB")
        return ImageCms.applyTransform(image, transform)
    except ImageCms.PyCMSError:
        if image.mode == "LAB":
            raise ValueError("littlecms cannot convert this LAB image") from None
        return image.convert("RGB")


def _scale_to_8bit(image: Image.Image, full_scale: float) -> Image.Image:
    # 16-bit PNG/TIFF greyscale opens as I;16 or I (32-bit int) holding 0..65535: map the
    # full range onto 0..255 (65535 / 255 = 257) instead of clipping.
    data = np.asarray(image, dtype=np.float64)
    data = np.nan_to_num(data) * (255.0 / full_scale)
    return Image.fromarray(np.clip(np.round(data), 0, 255).astype(np.uint8))  # 2-D uint8 -> mode L


def limit_aspect(image: Image.Image, max_ratio: float = 4.0) -> Image.Image:
    """Centre-crop the long side to ``max_ratio`` times the short side.

    Eval preprocessing resizes the short side and centre-crops a square, so only the middle
    of a long strip is ever seen; cropping first changes nothing the model sees but stops a
    1x5000 image from being resized to 256x1,280,000 pixels.
    """
    width, height = image.size
    short = min(width, height)
    long_max = max(1, math.ceil(short * max_ratio))
    if width > long_max:
        left = (width - long_max) // 2
        return image.crop((left, 0, left + long_max, height))
    if height > long_max:
        top = (height - long_max) // 2
        return image.crop((0, top, width, top + long_max))
    return image


def _head_of(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(512)


def _sniff(head: bytes) -> str:
    """A hint at what the data is instead, from its first (up to 512) bytes."""
    if head.lstrip().startswith((b"<!DOCTYPE", b"<html", b"<HTML")):
        return "it looks like an HTML page"
    try:
        # Drop the last 3 bytes: the read may have cut a multi-byte character in half.
        (head[:-3] if len(head) == 512 else head).decode("utf-8")
    except UnicodeDecodeError:
        return "unknown format or corrupt header"
    return "it looks like a text file" if b"\x00" not in head else "unknown format or corrupt header"


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__
