"""Brender node agent: takes jobs from the coordinator and renders them with Blender."""

from brender_addon import __version__  # the one version: bl_info's

__all__ = ["__version__"]
