"""Add-on preferences: where the coordinator is, the artist token, how to trust it."""
from __future__ import annotations

from typing import Any

import bpy
from bpy.props import BoolProperty, FloatProperty, StringProperty

from . import runtime
from .client import Client

ADDON_ID: str = __package__ or "brender_addon"   # "bl_ext.<repo>.brender_addon" as an extension


class BrenderPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    url: StringProperty(  # type: ignore[valid-type]
        name="Coordinator URL",
        description="Address of the Brender coordinator, e.g. http://renderfarm:8080",
        default="http://127.0.0.1:8080",
    )
    token: StringProperty(  # type: ignore[valid-type]
        name="Token",
        description="Your artist token (an admin gives it: brender-coordinator token create)",
        default="",
        subtype="PASSWORD",
    )
    ca_file: StringProperty(  # type: ignore[valid-type]
        name="CA File",
        description="Certificate (PEM) that signed an https:// coordinator's, when it is "
                    "not in the system's store",
        default="", subtype="FILE_PATH",
    )
    insecure: BoolProperty(  # type: ignore[valid-type]
        name="Insecure",
        description="Allow plain http:// to another machine (the token crosses the "
                    "network in the clear)",
        default=False,
    )
    poll_interval: FloatProperty(  # type: ignore[valid-type]
        name="Status Refresh",
        description="Seconds between two looks at a submitted shot's progress",
        default=3.0, min=0.5, max=60.0, subtype="TIME", unit="TIME",
    )

    def draw(self, context: Any) -> None:
        layout = self.layout
        layout.prop(self, "url")
        layout.prop(self, "token")
        layout.prop(self, "ca_file")
        layout.prop(self, "insecure")
        layout.prop(self, "poll_interval")
        row = layout.row()
        row.operator("brender.test_connection", icon="URL")
        state = runtime.state
        if state.connection_busy:
            row.label(text="Connecting...")
        elif state.connection_text:
            row.label(text=state.connection_text,
                      icon="ERROR" if state.connection_error else "CHECKMARK")


def preferences(context: Any = None) -> BrenderPreferences:
    ctx: Any = context or bpy.context
    prefs: BrenderPreferences = ctx.preferences.addons[ADDON_ID].preferences
    return prefs


def client(context: Any = None, timeout: float = 30.0) -> Client:
    prefs = preferences(context)
    return Client(prefs.url.strip(), prefs.token.strip(), timeout=timeout,
                  ca_file=prefs.ca_file.strip(), insecure=prefs.insecure)


def register() -> None:
    bpy.utils.register_class(BrenderPreferences)


def unregister() -> None:
    bpy.utils.unregister_class(BrenderPreferences)
