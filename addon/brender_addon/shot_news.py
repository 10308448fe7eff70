"""What the artist is told when their shot ends (issue 17): the report Blender shows
(status bar and Info editor), made here without bpy so it is tested in plain Python."""
from __future__ import annotations

from typing import Any


def finished_report(shot: dict[str, Any], suspicious: int = 0) -> tuple[str, str] | None:
    """(Blender report type, text) for a shot that ended, or None while it renders."""
    name = f"'{shot.get('name', '?')}' (#{shot.get('id')})"
    status = shot.get("status")
    done, total = shot.get("frames_done") or 0, shot.get("frames_total") or 0
    if status == "completed":
        text = f"Brender: shot {name} finished: {done} of {total} frames rendered"
        if suspicious:
            text += f"; {suspicious} look suspicious (see the dashboard)"
        return ("WARNING" if suspicious else "INFO"), text
    if status == "failed":
        why = shot.get("failure_reason") or "no reason given"
        return "ERROR", f"Brender: shot {name} failed after {done} of {total} frames: {why}"
    if status == "cancelled":
        return "WARNING", f"Brender: shot {name} was cancelled ({done} of {total} frames)"
    if status == "deleted":
        return "WARNING", f"Brender: shot {name} was deleted on the farm"
    return None
