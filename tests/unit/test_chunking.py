from hypothesis import given
from hypothesis import strategies as st

from coordinator.chunking import chunk_frames, frame_numbers, split_for_duration


def test_preview_frames_come_first_then_contiguous_chunks():
    jobs = chunk_frames(frame_numbers(1, 10, 1), 3)
    assert jobs[:3] == [[1], [10], [6]]
    assert jobs[3:] == [[2, 3, 4], [5], [7, 8, 9]]


def test_small_shots_are_not_split_for_previews():
    assert chunk_frames([1, 2, 3], 5) == [[1, 2, 3]]


def test_step_is_respected():
    assert frame_numbers(1, 10, 3) == [1, 4, 7, 10]
    jobs = chunk_frames(frame_numbers(1, 30, 3), 2)
    assert sorted(f for j in jobs for f in j) == frame_numbers(1, 30, 3)


@given(st.integers(-50, 50), st.integers(0, 300), st.integers(1, 7), st.integers(1, 40))
def test_every_frame_lands_in_exactly_one_job(start, length, step, chunk):
    frames = frame_numbers(start, start + length, step)
    jobs = chunk_frames(frames, chunk)
    flat = [f for j in jobs for f in j]
    assert sorted(flat) == frames
    assert all(0 < len(j) <= chunk for j in jobs)


def test_long_jobs_are_cut_to_the_target_duration():
    keep, rest = split_for_duration(list(range(1, 101)), 2.0, 20.0)
    assert keep == list(range(1, 11)) and rest == list(range(11, 101))
    assert split_for_duration([1, 2, 3], None, 20.0) == ([1, 2, 3], [])
