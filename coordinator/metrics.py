"""`GET /metrics`: the farm's figures in Prometheus' text format (prometheus-client).

Each app has its own CollectorRegistry (tests run many apps in one process) holding one
collector, which turns a snapshot into metric families. The snapshot is taken per
scrape from what the farm already keeps: counters bumped as frames and outputs land,
the dispatch-latency and loop-lag timings, the node sessions, and one read of the
store (`store/takeaway.metrics`) for the queue and each recent shot's render time.
"""
from __future__ import annotations

import time
from collections import deque
from typing import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

RATE_WINDOW = 60.0   # frames/s is measured over the last minute
QUANTILES = (("0.5", "p50_ms"), ("0.99", "p99_ms"), ("1", "max_ms"))
NODE_STATES = ("idle", "rendering", "asleep", "offline", "disabled")


class LandedCounters:
    """What landed since the coordinator started: frames, outputs and their bytes."""

    def __init__(self) -> None:
        self.frames = 0
        self.frame_bytes = 0
        self.outputs = 0
        self.output_bytes = 0
        self._recent: deque[float] = deque()

    def frame_landed(self, frame: dict) -> None:
        self.frames += 1
        self.frame_bytes += int(frame.get("size") or 0)
        now = time.monotonic()
        self._recent.append(now)
        self._trim(now)

    def output_landed(self, output: dict) -> None:
        self.outputs += 1
        self.output_bytes += int(output.get("size") or 0)

    def _trim(self, now: float) -> None:
        while self._recent and self._recent[0] < now - RATE_WINDOW:
            self._recent.popleft()

    def frames_per_second(self) -> float:
        self._trim(time.monotonic())
        return len(self._recent) / RATE_WINDOW


class FarmCollector(Collector):
    """Metric families from the latest snapshot (set by the route before each scrape)."""

    def __init__(self) -> None:
        self.snapshot: dict = {}

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        if not s:
            return
        counters: LandedCounters = s["counters"]
        rendered = CounterMetricFamily("brender_frames_rendered",
                                       "Frames recorded since the coordinator started")
        rendered.add_metric([], counters.frames)
        yield rendered
        yield GaugeMetricFamily("brender_frames_per_second",
                                f"Frames recorded per second over the last {RATE_WINDOW:.0f} s",
                                value=counters.frames_per_second())
        uploads = CounterMetricFamily("brender_upload_bytes",
                                      "Bytes of frames and extra outputs recorded since start",
                                      labels=["kind"])
        uploads.add_metric(["frame"], counters.frame_bytes)
        uploads.add_metric(["output"], counters.output_bytes)
        yield uploads
        yield GaugeMetricFamily("brender_queue_frames",
                                "Frames of queued, active and paused shots not rendered yet",
                                value=s["store"]["frames_queued"])
        jobs = GaugeMetricFamily("brender_jobs", "Jobs by status", labels=["status"])
        for status in ("queued", "running", "done", "failed", "cancelled"):
            jobs.add_metric([status], s["store"]["jobs"].get(status, 0))
        yield jobs
        nodes = GaugeMetricFamily("brender_nodes", "Nodes by state (disabled also counts "
                                  "in its other state)", labels=["state"])
        for state in NODE_STATES:
            nodes.add_metric([state], s["nodes"].get(state, 0))
        yield nodes
        for name, help_text, summary in (
                ("brender_dispatch_latency_seconds",
                 "Seconds from a node's ready to its job sent, over the last minute",
                 s["dispatch"]),
                ("brender_loop_lag_seconds",
                 "How late the coordinator's event loop ran, over the last minute", s["lag"])):
            family = GaugeMetricFamily(name, help_text, labels=["quantile"])
            for quantile, key in QUANTILES:
                value = summary.get(key)
                family.add_metric([quantile], float("nan") if value is None else value / 1000)
            yield family
            yield GaugeMetricFamily(name + "_samples", "Samples in the last minute",
                                    value=summary.get("samples", 0))
        render = GaugeMetricFamily(
            "brender_shot_render_seconds",
            "Render seconds spent on each shot (not ended, or ended in the last hour)",
            labels=["shot_id", "shot"])
        done = GaugeMetricFamily("brender_shot_frames_done", "Frames done of each such shot",
                                 labels=["shot_id", "shot"])
        for shot in s["store"]["shots"]:
            labels = [str(shot["id"]), shot["name"]]
            render.add_metric(labels, float(shot["render_time_sum"] or 0))
            done.add_metric(labels, shot["frames_done"])
        yield render
        yield done
        movies = CounterMetricFamily("brender_movies_made", "Preview movies made since start")
        movies.add_metric([], s["movies_made"])
        yield movies


class FarmMetrics:
    """The app's registry and its collector."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = FarmCollector()
        self.registry.register(self.collector)

    def render(self, snapshot: dict) -> bytes:
        self.collector.snapshot = snapshot
        try:
            return generate_latest(self.registry)
        finally:
            self.collector.snapshot = {}
