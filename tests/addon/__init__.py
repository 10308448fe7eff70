"""Tests of the Blender add-on (addon/brender_addon) and build_addon.py."""
