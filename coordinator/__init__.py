"""Brender coordinator: the farm's one server."""

__version__ = "0.1.0"
