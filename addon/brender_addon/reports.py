"""Blender reports from the add-on's timers: a report needs an operator, so the
timer that applies the watcher's news runs this one (status bar and Info editor;
printed to the console under `blender -b`)."""
from __future__ import annotations

from typing import Any, Literal

import bpy

LEVELS = ("INFO", "WARNING", "ERROR")
Result = set[Literal["RUNNING_MODAL", "CANCELLED", "FINISHED", "PASS_THROUGH", "INTERFACE"]]


class BRENDER_OT_report(bpy.types.Operator):
    bl_idname = "brender.report"
    bl_label = "Brender report"
    bl_description = "Show a Brender message as a Blender report"
    bl_options = {"INTERNAL"}

    message: bpy.props.StringProperty()  # type: ignore[valid-type]
    level: bpy.props.EnumProperty(  # type: ignore[valid-type]
        items=[(level, level.title(), "") for level in LEVELS], default="INFO")

    def execute(self, context: Any) -> Result:
        self.report({self.level}, self.message)
        return {"FINISHED"}


def show(level: str, message: str) -> None:
    """Report `message` from Blender's main thread (a timer); never raises."""
    try:
        operators: Any = bpy.ops   # the add-on's own operators are not in the stubs
        operators.brender.report(level=level if level in LEVELS else "INFO", message=message)
    except RuntimeError:
        # An ERROR report makes bpy.ops raise once it is shown: it was shown.
        pass
    except Exception as err:   # a report is news, never a reason to break the timer
        print(f"Brender: {message} ({err})")


def register() -> None:
    bpy.utils.register_class(BRENDER_OT_report)


def unregister() -> None:
    bpy.utils.unregister_class(BRENDER_OT_report)
