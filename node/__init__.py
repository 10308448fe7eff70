"""Brender node agent: takes jobs from the coordinator and renders them with Blender."""

__version__ = "0.1.0"
