"""The report an artist gets when their shot ends (plain Python, no bpy)."""
from brender_addon.shot_news import finished_report


def test_each_ending_has_its_report():
    shot = {"id": 7, "name": "intro", "frames_done": 12, "frames_total": 12}
    assert finished_report({**shot, "status": "completed"}) == \
        ("INFO", "Brender: shot 'intro' (#7) finished: 12 of 12 frames rendered")
    level, text = finished_report({**shot, "status": "completed"}, suspicious=2)
    assert level == "WARNING" and "2 look suspicious" in text
    level, text = finished_report({**shot, "status": "failed", "frames_done": 3,
                                   "failure_reason": "out of memory"})
    assert level == "ERROR" and text.endswith("failed after 3 of 12 frames: out of memory")
    assert finished_report({**shot, "status": "cancelled"})[0] == "WARNING"
    assert finished_report({**shot, "status": "active"}) is None
