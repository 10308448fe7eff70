"""Frame checks: does a frame that landed look like a render gone wrong?

Three signs, each cheap because the frame is decoded once already, for its thumbnail,
in a frame worker (`thumbnails.py` calls the image checks there and the result comes
back with the thumbnail; no second decode):

  one colour     every pixel the same colour (within a small tolerance, since Blender
                 dithers): black, white, transparent or another colour; judged on the
                 thumbnail (EXR: on the float pixels)
  NaN/Inf        an EXR with pixels that are not finite numbers (a shader divided by 0)
  far smaller    the file is far smaller than the frames recorded next to it (most
                 often a frame where an object or a texture went missing)

`verdict` joins them into the reason the frame is flagged with (null: it looks fine);
the store keeps it on the frame row (`store/frame_checks.py`).
"""
from __future__ import annotations

from statistics import median

import numpy as np
from PIL import Image

# 8-bit channels within this of each other count as one colour: Blender's dither adds
# ±1 of noise to a flat area.
RASTER_TOLERANCE = 2
FLOAT_TOLERANCE = 1e-3
# Smaller than this share of the median of its recorded neighbours' sizes: suspicious.
SMALL_SHARE = 0.25
# Neighbours compared (this many on each side), and how many must be recorded.
NEIGHBOURS = 2
MIN_NEIGHBOURS = 2


def raster_checks(img: Image.Image) -> dict:
    """The checks of a decoded RGB/RGBA image: the frame's thumbnail (`thumbnails.py`),
    so a frame is one colour when it looks so at thumbnail size; a uniform frame gives
    a uniform thumbnail, and a detail of a few pixels still shows in one."""
    extrema = img.getextrema()
    bands: list[tuple[int, int]] = list(extrema) if isinstance(extrema[0], tuple) \
        else [extrema]  # type: ignore[list-item]
    alpha = bands[3] if img.mode == "RGBA" else None
    if alpha is not None and alpha[1] == 0:
        return {"uniform": "transparent", "nonfinite": 0}
    if all(hi - lo <= RASTER_TOLERANCE for lo, hi in bands):
        rgb = [(lo + hi) // 2 for lo, hi in bands[:3]]
        return {"uniform": _colour_name(rgb, 255), "nonfinite": 0}
    return {"uniform": None, "nonfinite": 0}


def float_checks(rgba: np.ndarray) -> dict:
    """The checks of an EXR's float RGBA pixels (H x W x 4)."""
    finite = np.isfinite(rgba)
    nonfinite = int(rgba.shape[0] * rgba.shape[1] - np.count_nonzero(finite.all(axis=-1)))
    if nonfinite:
        return {"uniform": None, "nonfinite": nonfinite}
    if float(rgba[..., 3].max()) <= 0.0:
        return {"uniform": "transparent", "nonfinite": 0}
    lo, hi = rgba.min(axis=(0, 1)), rgba.max(axis=(0, 1))
    if bool(((hi - lo) <= FLOAT_TOLERANCE).all()):
        rgb = [round(float(np.clip(v, 0.0, 1.0)) * 255) for v in (lo[:3] + hi[:3]) / 2]
        return {"uniform": _colour_name(rgb, 255), "nonfinite": 0}
    return {"uniform": None, "nonfinite": 0}


def _colour_name(rgb: list[int], top: int) -> str:
    if all(v <= RASTER_TOLERANCE for v in rgb):
        return "black"
    if all(v >= top - RASTER_TOLERANCE for v in rgb):
        return "white"
    return "#" + "".join(f"{v:02x}" for v in rgb)


def verdict(checks: dict | None, size: int, neighbour_sizes: list[int]) -> str | None:
    """Why the frame is suspicious, or None when it looks fine."""
    reasons = []
    checks = checks or {}
    if checks.get("nonfinite"):
        reasons.append(f"{checks['nonfinite']} pixels are NaN or infinite")
    uniform = checks.get("uniform")
    if uniform == "transparent":
        reasons.append("the frame is fully transparent")
    elif uniform:
        reasons.append(f"the whole frame is one colour ({uniform})")
    if len(neighbour_sizes) >= MIN_NEIGHBOURS:
        typical = median(neighbour_sizes)
        if size < typical * SMALL_SHARE:
            reasons.append(f"the file is far smaller than its neighbours' "
                           f"({size} bytes, they have about {int(typical)})")
    return "; ".join(reasons) or None
