"""Image validation and decoding: every file gets a defined outcome, decoded RGB or a quarantine reason.

Choices (documented in docs/datasets.md):
- ``image_id`` = the first 32 hex characters (128 bits) of the SHA-256 of the file bytes. Quarantined files
  get no id, so no downstream store can key anything on bytes that did not decode.
- Alpha (LA, RGBA, PA, palette with transparency) is composited on WHITE, the usual look of a transparent
  web image; dropping alpha instead would expose arbitrary colours under fully transparent pixels.
- 16-bit greyscale ("I;16*", "I") is scaled to 8 bit by ``round(v / 257)`` (full 16-bit range assumed);
  Pillow's own ``convert("RGB")`` clips everything above 255 to white, which is wrong.
- CMYK with an embedded ICC profile is converted through LittleCMS to sRGB, otherwise with Pillow's formula.
- Animated images (GIF, APNG, WebP) use their first frame.
- EXIF orientation is applied, so width/height are those of the image as displayed.
- Decoding is complete (``img.load()``), so truncated files are caught here and not in a GPU worker.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "IMAGE_EXTENSIONS",
    "ImageCheck",
    "ImageDecodeError",
    "decode_bytes",
    "image_id_of",
    "inspect_image",
    "plain_jpeg_size",
    "load_rgb",
    "read_image_bytes",
]

DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's Image.MAX_IMAGE_PIXELS default
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".jfif"})
IMAGE_ID_HEX_CHARS = 32

# Stable reason keys: an error string is "<reason>: <detail>", and summaries group by <reason>.
OUTSIDE_ROOT = "outside dataset root"
MISSING = "missing file"
NOT_A_FILE = "not a regular file"
PERMISSION = "permission denied"
UNREADABLE = "unreadable file"
EMPTY = "empty file"
NOT_AN_IMAGE = "not an image"
TOO_LARGE = "decompression bomb"
TRUNCATED = "truncated or corrupt image"
UNSUPPORTED = "unsupported image mode"


class ImageDecodeError(Exception):
    """An image could not be turned into RGB pixels; ``reason`` is a stable key, ``detail`` says why."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class ImageCheck:
    """Outcome of :func:`inspect_image` for one file."""

    image_id: str | None
    status: Literal["ok", "quarantined"]
    error: str | None
    width: int | None
    height: int | None


def image_id_of(data: bytes) -> str:
    """The content id of an image file: first 32 hex chars of SHA-256 over the raw bytes."""
    return hashlib.sha256(data).hexdigest()[:IMAGE_ID_HEX_CHARS]


def _sixteen_bit_to_l(img: Image.Image) -> Image.Image:
    arr = np.asarray(img, dtype=np.float64)
    if img.mode == "F":
        arr = arr * 255.0 if arr.size and float(np.nanmax(arr)) <= 1.0 else arr
    else:
        arr = arr / 257.0
    return Image.fromarray(np.clip(np.rint(np.nan_to_num(arr)), 0, 255).astype(np.uint8), mode="L")


def _on_white(img: Image.Image) -> Image.Image:
    rgba = img.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _cmyk_to_rgb(img: Image.Image) -> Image.Image:
    icc = img.info.get("icc_profile")
    if icc:
        try:
            src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            return ImageCms.profileToProfile(img, src, ImageCms.createProfile("sRGB"), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            pass  # a broken profile is not worth a quarantine: fall back to Pillow's formula
    return img.convert("RGB")


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        return _on_white(img)
    if mode == "CMYK":
        return _cmyk_to_rgb(img)
    if mode.startswith("I") or mode == "F":
        return _sixteen_bit_to_l(img).convert("RGB")
    try:
        return img.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageDecodeError(UNSUPPORTED, f"{mode} ({exc})") from exc


def decode_bytes(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode image bytes to an RGB image (EXIF orientation applied, first frame, fully loaded).

    Raises :class:`ImageDecodeError` for empty, non-image, oversized, truncated or undecodable data.
    """
    if not data:
        raise ImageDecodeError(EMPTY, "0 bytes")
    try:
        with warnings.catch_warnings():
            # Our own max_pixels check below replaces Pillow's global warning/limit.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
        width, height = img.size
        if width * height > max_pixels:
            raise ImageDecodeError(
                TOO_LARGE, f"{width}x{height} = {width * height} pixels exceeds the limit of {max_pixels}"
            )
        img.seek(0)  # animated: first frame
        img.load()  # full decode: truncated data raises here
        img = ImageOps.exif_transpose(img)
        rgb = _to_rgb(img)
        rgb.load()
        return rgb
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(TOO_LARGE, str(exc)) from exc
    except UnidentifiedImageError as exc:
        raise ImageDecodeError(NOT_AN_IMAGE, "cannot identify the image format") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error) as exc:
        raise ImageDecodeError(TRUNCATED, str(exc) or type(exc).__name__) from exc


def _read_regular(path: Path) -> bytes:
    """The bytes of ``path`` if it is a regular file. Opened non-blocking and checked with fstat before any
    read, so a FIFO, socket or device named ``*.jpg`` is refused at once instead of blocking forever."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a directory"
                    if stat.S_ISDIR(mode) else "not a file")
            raise ImageDecodeError(NOT_A_FILE, f"{path} is {kind}")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read()
    finally:
        os.close(fd)


def _read(path: Path, root: Path | None) -> bytes:
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError) as exc:  # symlink loops
        raise ImageDecodeError(UNREADABLE, str(exc)) from exc
    if root is not None and not resolved.is_relative_to(root.resolve()):
        raise ImageDecodeError(OUTSIDE_ROOT, f"{path} resolves to {resolved}")
    try:
        return _read_regular(resolved)
    except FileNotFoundError as exc:
        raise ImageDecodeError(MISSING, str(path)) from exc
    except (IsADirectoryError, NotADirectoryError) as exc:
        raise ImageDecodeError(NOT_A_FILE, str(path)) from exc
    except PermissionError as exc:
        raise ImageDecodeError(PERMISSION, f"{path} (check the file's permissions)") from exc
    except OSError as exc:
        raise ImageDecodeError(UNREADABLE, f"{path}: {exc}") from exc


def inspect_image(path: Path, root: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageCheck:
    """Hash and fully decode ``path``; never raises for a bad file, quarantines it with a reason instead.

    A ``path`` that resolves (after symlinks and ``..``) outside ``root`` is quarantined without being read.
    """
    try:
        data = _read(Path(path), Path(root))
        img = decode_bytes(data, max_pixels)
    except ImageDecodeError as exc:
        return ImageCheck(None, "quarantined", str(exc), None, None)
    return ImageCheck(image_id_of(data), "ok", None, img.width, img.height)


def read_image_bytes(path: Path) -> bytes:
    """The raw bytes of an image file (regular files only); raises :class:`ImageDecodeError`."""
    return _read(Path(path), None)


def plain_jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a baseline/progressive 3-channel JPEG (torchvision decodes it to the same RGB as
    PIL); None for anything else, incl. CMYK/greyscale JPEGs, which take the PIL path and its colour rules."""
    if data[:3] != b"\xff\xd8\xff":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker in (0xC0, 0xC1, 0xC2):  # SOF0/1/2: length, precision, height, width, components
            if data[i + 9] != 3:
                return None
            return int.from_bytes(data[i + 7: i + 9], "big"), int.from_bytes(data[i + 5: i + 7], "big")
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        i += 2 + int.from_bytes(data[i + 2: i + 4], "big")
    return None


def load_rgb(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Read and decode ``path`` to an RGB :class:`PIL.Image.Image`; raises :class:`ImageDecodeError`."""
    return decode_bytes(_read(Path(path), None), max_pixels)
