"""The farm's wire rules (the `brender_protocol` package): formats, a shot's limits,
text and path rules, what a shot may ask of its nodes. The add-on zip carries a copy
inside this package (Blender installs one top-level package per add-on); a checkout
or `pip install brender` has the package itself."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from brender_protocol import errors, formats, requirements, shot, text, transport
else:
    try:
        from .brender_protocol import errors, formats, requirements, shot, text, transport
    except ImportError:
        from brender_protocol import errors, formats, requirements, shot, text, transport

__all__ = ["errors", "formats", "requirements", "shot", "text", "transport"]
