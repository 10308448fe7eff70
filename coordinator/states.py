"""Shot, job and frame states, with the one table of allowed transitions."""
from __future__ import annotations

from enum import Enum


class ShotStatus(str, Enum):
    QUEUED = "queued"
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobStatus(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class FrameStatus(str, Enum):
    QUEUED = "queued"
    RENDERING = "rendering"
    DONE = "done"
    FAILED = "failed"   # its job failed for good; `failure_reason` says why


S, J = ShotStatus, JobStatus

SHOT_TRANSITIONS: dict[ShotStatus, set[ShotStatus]] = {
    S.QUEUED: {S.ACTIVE, S.PAUSED, S.CANCELLED, S.FAILED, S.COMPLETED},
    S.ACTIVE: {S.PAUSED, S.CANCELLED, S.FAILED, S.COMPLETED, S.QUEUED},
    S.PAUSED: {S.QUEUED, S.ACTIVE, S.CANCELLED},
    S.FAILED: {S.ACTIVE, S.CANCELLED},
    S.COMPLETED: set(),
    S.CANCELLED: set(),
}

JOB_TRANSITIONS: dict[JobStatus, set[JobStatus]] = {
    J.QUEUED: {J.RUNNING, J.CANCELLED, J.DONE},
    # RUNNING -> QUEUED: lease lost or handed back; -> DONE/FAILED: the node's report.
    J.RUNNING: {J.QUEUED, J.DONE, J.FAILED, J.CANCELLED},
    J.FAILED: {J.QUEUED, J.CANCELLED},
    J.DONE: set(),
    J.CANCELLED: set(),
}

# Shots whose queued jobs may be handed to nodes.
DISPATCHABLE_SHOTS = (S.QUEUED.value, S.ACTIVE.value)
FINAL_SHOTS = (S.COMPLETED.value, S.CANCELLED.value)


class TransitionError(ValueError):
    pass


def check_shot(old: str, new: str) -> None:
    if ShotStatus(new) not in SHOT_TRANSITIONS[ShotStatus(old)]:
        raise TransitionError(f"a {old} shot cannot become {new}")


def check_job(old: str, new: str) -> None:
    if JobStatus(new) not in JOB_TRANSITIONS[JobStatus(old)]:
        raise TransitionError(f"a {old} job cannot become {new}")


def sql_sources(table: dict, new: str) -> tuple[str, ...]:
    """The states from which `new` may be reached, for `WHERE status IN (...)`."""
    return tuple(old.value for old, targets in table.items() if new in targets)
