"""Splitting a shot's frames into jobs."""
from __future__ import annotations

from brender_protocol.shot import MAX_FRAMES


def frame_numbers(start: int, end: int, step: int) -> list[int]:
    return list(range(start, end + 1, step))


def preview_first(frames: list[int]) -> list[int]:
    """First, last and middle frames, so a shot shows its range early."""
    if len(frames) < 3:
        return list(frames)
    picks = [frames[0], frames[-1], frames[len(frames) // 2]]
    return list(dict.fromkeys(picks))


def chunk_frames(frames: list[int], chunk_size: int, previews: bool = True) -> list[list[int]]:
    """Jobs for a shot: preview frames alone first, then contiguous chunks.

    Contiguous chunks let one Blender session render neighbouring frames, which
    keeps caches (BVH, textures) warm.
    """
    if chunk_size < 1:
        raise ValueError("chunk size must be at least 1")
    jobs: list[list[int]] = []
    head = preview_first(frames) if previews and len(frames) > chunk_size else []
    for f in head:
        jobs.append([f])
    taken = set(head)
    rest = [f for f in frames if f not in taken]
    step = frames[1] - frames[0] if len(frames) > 1 else 1
    current: list[int] = []
    for f in rest:
        # A gap left by a preview frame ends the chunk so chunks stay contiguous.
        if current and (len(current) >= chunk_size or f - current[-1] != step):
            jobs.append(current)
            current = []
        current.append(f)
    if current:
        jobs.append(current)
    return jobs


def fixed_chunks(frames: list[int], chunk_size: int) -> list[list[int]]:
    """Jobs of exactly `chunk_size` frames in order (the last may be shorter), as the
    artist asked: never cut or merged. The jobs holding the first, last and middle
    frames go first, so the shot still shows its range early."""
    if chunk_size < 1:
        raise ValueError("chunk size must be at least 1")
    jobs = [frames[i:i + chunk_size] for i in range(0, len(frames), chunk_size)]
    if not jobs:
        return jobs
    picks = preview_first(list(range(len(frames))))
    head = list(dict.fromkeys(i // chunk_size for i in picks))
    return [jobs[j] for j in head] + [job for j, job in enumerate(jobs) if j not in head]


def split_for_duration(frames: list[int], seconds_per_frame: float | None,
                       target_seconds: float) -> tuple[list[int], list[int]]:
    """Cut a job so it lasts about `target_seconds`; returns (keep, remainder)."""
    if not seconds_per_frame or seconds_per_frame <= 0 or len(frames) <= 1:
        return frames, []
    keep = max(1, int(target_seconds / seconds_per_frame + 1e-6))
    return frames[:keep], frames[keep:]
