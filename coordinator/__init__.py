"""Brender coordinator: the farm's one server."""

from brender_addon import __version__  # the one version: bl_info's

__all__ = ["__version__"]
