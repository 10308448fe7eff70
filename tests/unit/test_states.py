import pytest

from coordinator.states import (JOB_TRANSITIONS, JobStatus, ShotStatus, TransitionError,
                                check_job, check_shot)


def test_final_states_have_no_way_out():
    for final in (ShotStatus.COMPLETED, ShotStatus.CANCELLED):
        for target in ShotStatus:
            if target != final:
                with pytest.raises(TransitionError):
                    check_shot(final.value, target.value)
    assert JOB_TRANSITIONS[JobStatus.DONE] == set()


def test_allowed_transitions():
    check_shot("queued", "active")
    check_shot("active", "paused")
    check_shot("failed", "active")  # requeue
    check_job("running", "queued")  # lease lost
    with pytest.raises(TransitionError):
        check_job("done", "queued")
    with pytest.raises(TransitionError):
        check_shot("completed", "active")
