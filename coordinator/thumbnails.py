"""Thumbnails and browser previews, made in frame worker processes.

PNG and JPEG frames of up to a few megapixels are thumbnailed from memory by the
frame worker that writes them (`make_from_bytes`); EXR tone mapping, very large
images and the other formats are made from the written file (`make`) by the heavy
pool of frame workers (`frame_workers.py`, `frame_pipeline.py`).

A thumbnail is returned as encoded bytes, to be stored with the frame's record in
the database: a few kilobytes that SQLite stores and serves cheaper than a file of
its own (creating a file, an inode, was the largest single cost of a frame)."""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .frame_checks import float_checks, raster_checks

JPEG_QUALITY = 85
# Larger raster frames go to the heavy pool, so one cannot hold a frame worker
# (which writes the frames behind it) for long.
THREAD_MAX_PIXELS = 4_200_000


@dataclass
class ThumbResult:
    thumbnail: bytes
    thumbnail_ext: str   # "jpg", or "png" when the frame has transparency
    preview: Path | None
    width: int
    height: int
    # What the frame checks need from the decoded image (`frame_checks.image_checks`).
    checks: dict | None = None


def _has_alpha(img: Image.Image) -> bool:
    if img.mode not in ("RGBA", "LA", "PA") and "transparency" not in img.info:
        return False
    alpha = img.getchannel("A") if img.mode in ("RGBA", "LA", "PA") else img.convert("RGBA").getchannel("A")
    lowest = alpha.getextrema()[0]  # a single band: (min, max) of numbers
    return isinstance(lowest, (int, float)) and lowest < 255


def _pick_rgba(path: Path) -> np.ndarray:
    """Read an EXR (single or multilayer) and return float RGBA, H x W x 4."""
    import OpenEXR

    with OpenEXR.File(str(path), separate_channels=True) as exr:
        channels = exr.channels()
        names = list(channels)

        def find(letter: str) -> str | None:
            # Prefer the beauty pass: bare R/G/B, then "...Combined.R", then any "*.R".
            for candidate in (letter, f"Combined.{letter}"):
                if candidate in channels:
                    return candidate
            for n in names:
                if n.endswith(f"Combined.{letter}"):
                    return n
            for n in names:
                if n.endswith(f".{letter}"):
                    return n
            return None

        picked = [find(c) for c in "RGBA"]
        if picked[0] is None:
            first = channels[names[0]].pixels.astype(np.float32)
            rgb = np.stack([first] * 3, axis=-1)
            return np.concatenate([rgb, np.ones(first.shape + (1,), np.float32)], axis=-1)
        r = channels[picked[0]].pixels.astype(np.float32)
        g, b = ((channels[n].pixels.astype(np.float32) if n else r) for n in picked[1:3])
        a = channels[picked[3]].pixels.astype(np.float32) if picked[3] else np.ones_like(r)
        return np.stack([r, g, b, a], axis=-1)


def tone_map(rgba: np.ndarray) -> Image.Image:
    """Linear scene light to display sRGB: Reinhard on exposure-normalised values."""
    rgb = np.nan_to_num(rgba[..., :3], nan=0.0, posinf=1e4, neginf=0.0).clip(0, None)
    mapped = rgb / (1.0 + rgb)
    # Reinhard halves mid-grey; scale back so a value of 1.0 stays near white.
    mapped = np.clip(mapped * 2.0, 0.0, 1.0)
    srgb = np.where(mapped <= 0.0031308, mapped * 12.92,
                    1.055 * np.power(mapped, 1 / 2.4) - 0.055)
    out = (srgb * 255 + 0.5).astype(np.uint8)
    alpha = (np.clip(rgba[..., 3], 0, 1) * 255 + 0.5).astype(np.uint8)
    return Image.fromarray(np.dstack([out, alpha]), "RGBA")


EXR_MAGIC = b"\x76\x2f\x31\x01"
# Pillow's reader for each raster output format: TARGA has no magic number to be
# recognised by, so the node's X-Output-Format says which reader to use.
PILLOW_FORMATS = {"PNG": "PNG", "JPEG": "JPEG", "TIFF": "TIFF", "BMP": "BMP",
                  "TARGA": "TGA", "WEBP": "WEBP"}


def make(frame: Path, size: int, output_format: str | None = None) -> ThumbResult:
    """Runs in a worker process: the thumbnail of the file `frame`, and for EXR a
    browser preview written at `preview_path(frame)`. Decodes at reduced size where
    it can."""
    with open(frame, "rb") as f:
        is_exr = f.read(4) == EXR_MAGIC
    if not is_exr:
        reader = PILLOW_FORMATS.get(output_format or "")
        return _raster(Image.open(frame, formats=[reader] if reader else None), size)
    rgba = _pick_rgba(frame)
    img = tone_map(rgba)
    preview = preview_path(frame)
    img.convert("RGB").save(preview, "JPEG", quality=JPEG_QUALITY)
    result = _raster(img, size)
    result.preview = preview
    result.checks = float_checks(rgba)
    return result


def make_from_bytes(data: bytes, size: int) -> ThumbResult | None:
    """The thumbnail of an in-memory PNG/JPEG frame of moderate size, or None when
    it is heavy work (EXR, very large, or not something Pillow reads)."""
    if data[:4] == EXR_MAGIC:
        return None
    try:
        img = Image.open(io.BytesIO(data))
        if img.width * img.height > THREAD_MAX_PIXELS:
            return None
        return _raster(img, size)
    except Exception:  # `make` tries again and reports what is wrong
        return None


def _raster(img: Image.Image, size: int) -> ThumbResult:
    width, height = img.size
    # JPEG decodes straight to a smaller scale; a no-op for the others.
    img.draft("RGB", (size, size))
    alpha = _has_alpha(img)
    img = img.convert("RGBA" if alpha else "RGB")
    img.thumbnail((size, size), Image.Resampling.LANCZOS)
    # Judged on the thumbnail, which is made anyway (on the whole frame it cost as
    # much as the thumbnail itself): Lanczos keeps a detail of a few pixels visible.
    checks = raster_checks(img)
    out = io.BytesIO()
    if alpha:
        img.save(out, "PNG")
    else:
        img.save(out, "JPEG", quality=JPEG_QUALITY)
    return ThumbResult(out.getvalue(), "png" if alpha else "jpg", None, width, height, checks)


def preview_path(frame: Path) -> Path:
    """Where `make` writes the browser preview of the EXR `frame`."""
    return frame.with_name(frame.name + ".preview.jpg")
