"""The benchmarks' own arithmetic: how shots are sized to the fleet, how nodes are split
into pools over load-generator processes, how "idle while servable" is counted, and
what a paced fleet offers."""
from __future__ import annotations

import random
from collections import Counter

from benchmarks.capacity import shot_size
from benchmarks.fleet import split_pools
from benchmarks.pools import can_serve, idle_while_servable, pools_for
from benchmarks.simnodes import pool_of_each, render_time

CPU_A = {"name": "cpu-a", "tags": ["cpu", "pool-a"], "gpu": False}
GPU_D = {"name": "gpu-d", "tags": ["gpu", "bigmem"], "gpu": True}
POOLS = [CPU_A, GPU_D]
SHOTS = {1: {"requires_tags": ["pool-a"]}, 2: {"device": "gpu"}}


def test_the_shot_outlasts_the_window_and_every_node_gets_several_jobs():
    frames, window = shot_size(5000, 4000, 6.0, 500.0)
    assert window == 3.5 * 5000 / 500 + 2
    assert frames >= 500 * window + 5000       # the offer over the window, plus one each
    frames, window = shot_size(5000, 4000, 6.0, None)
    assert frames == 20_000 and window > 6.0
    # Small fleets keep the sizes the table was measured with.
    assert shot_size(10, 4000, 6.0, None) == (4000, 6.0)
    assert shot_size(1000, 12000, 12.0, None) == (12000, 12.0)


def test_a_paced_fleet_offers_its_pace_from_the_submit_on():
    """5,000 nodes all handed a job at the submit, 10 s a frame on average: 500 frames
    a second from the first second on, never the 1.5 times that overlapping waves of
    whole first frames offered 12-15 s in."""
    random.seed(16)
    landed: Counter[int] = Counter()
    for _ in range(5000):
        t = render_time(10.0, rendering=False)
        while t < 40:
            landed[int(t)] += 1
            t += render_time(10.0, rendering=True)
    per_second = [landed[s] for s in range(40)]
    assert min(per_second) > 400 and max(per_second) < 600, per_second


def test_pools_add_up_to_the_fleet_over_processes():
    pools = pools_for(1001)
    assert sum(p["count"] for p in pools) == 1001
    shares = split_pools(pools, 3)
    for pool in pools:
        assert sum(p["count"] for share in shares for p in share
                   if p["name"] == pool["name"]) == pool["count"]
    assert sum(p["count"] for p in split_pools([dict(CPU_A, count=1)], 2)[1]) == 0
    each = pool_of_each([dict(CPU_A, count=2), dict(GPU_D, count=1)], 3)
    assert [p["name"] for p in each] == ["cpu-a", "cpu-a", "gpu-d"]


def test_a_pool_serves_a_shot_whose_tags_and_device_it_has():
    assert can_serve(CPU_A, SHOTS[1]) and not can_serve(CPU_A, SHOTS[2])
    assert can_serve(GPU_D, SHOTS[2]) and not can_serve(GPU_D, SHOTS[1])
    assert can_serve(GPU_D, {"device": "cpu", "requires_tags": ["bigmem"]})


def test_idle_nodes_count_only_while_a_shot_their_pool_serves_has_queued_jobs():
    polls = [(10.0, {1: 5, 2: 0}), (11.0, {1: 0, 2: 3})]
    process_a = [(10.05, {"cpu-a": [4, 2], "gpu-d": [1, 1]}),   # shot 1 queued: cpu-a counts
                 (10.55, {"cpu-a": [0, 0], "gpu-d": [9, 9]}),   # gpu-d idle, nothing for it
                 (11.05, {"cpu-a": [7, 7], "gpu-d": [1, 0]})]   # shot 2 queued, gpu-d not long
    process_b = [(10.07, {"gpu-d": [3, 3]}), (11.02, {"gpu-d": [2, 2]}),
                 (9.5, {"cpu-a": [50, 50]})]                   # before any poll: not counted
    totals = idle_while_servable([process_a, process_b], polls, POOLS, SHOTS,
                                 start=9.0, end=11.5, interval=0.5)
    assert totals == [0, 0, 2, 0, 2]


def test_within_a_slot_a_process_counts_once_and_unknown_shots_are_ignored():
    polls = [(0.0, {1: 1, 99: 4})]
    samples = [(0.1, {"cpu-a": [3, 3]}), (0.2, {"cpu-a": [1, 1]}), (0.3, {"gpu-d": [5, 5]})]
    assert idle_while_servable([samples], polls, POOLS, SHOTS, 0.0, 1.0, 1.0) == [0]
    assert idle_while_servable([samples[:2]], polls, POOLS, SHOTS, 0.0, 1.0, 1.0) == [1]
