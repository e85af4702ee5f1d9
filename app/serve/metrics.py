"""`GET /metrics`: the run in Prometheus' text format, for a monitoring system to scrape.

    samurai_frames_total, samurai_dropped_frames_total, samurai_source_reconnects_total,
    samurai_events_dropped_total                                          counters
    samurai_fps, samurai_objects{state}, samurai_source_up, samurai_sse_clients   gauges
    samurai_latency_seconds, samurai_stage_seconds{stage}                 histograms

Counters follow the loop's own counts (those of summary.json). The loop thread
updates them once per frame (`on_frame`); what can change between frames (the
source going away, object states, FPS) is read when scraped. The registry is the
run's own, not the process-wide default. No label takes a value per client or
per request, so the series stay as few as the run's states and stages however
many clients come and go.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from app.live.control import ENDED, WAITING, TrackController
from app.live.stats import MS_PER_S, LoopStats
from app.media.sources import FrameSource
from app.samurai.results import LOST, TRACKING

CONTENT_TYPE = CONTENT_TYPE_LATEST
STATES = (TRACKING, LOST, WAITING, ENDED)
# Seconds: from a fast NPU step (tens of ms) to a slow CPU one and a live latency of a few seconds.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class RunMetrics:
    def __init__(self, source: FrameSource, controller: TrackController):
        self.source, self.controller = source, controller
        self.registry = registry = CollectorRegistry()
        self.frames = Counter("samurai_frames", "Frames tracked", registry=registry)
        self.dropped = Counter("samurai_dropped_frames", "Source frames never tracked (live sources)",
                               registry=registry)
        self.reconnects = Counter("samurai_source_reconnects", "Times the stream came back after a drop",
                                  registry=registry)
        self.events_dropped = Counter("samurai_events_dropped", "Result-stream events lost by SSE clients (all)",
                                      registry=registry)
        self.sse_clients = Gauge("samurai_sse_clients", "SSE clients connected now", registry=registry)
        self.fps = Gauge("samurai_fps", "Tracked frames per second, recent", registry=registry)
        self.objects = Gauge("samurai_objects", "Objects by state", ["state"], registry=registry)
        self.source_up = Gauge("samurai_source_up", "1 while the source delivers frames", registry=registry)
        self.latency = Histogram("samurai_latency_seconds",
                                 "Capture to result per frame on a live source; the tracker's step on a file",
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.stage = Histogram("samurai_stage_seconds", "Time per frame in each stage (sub-model, pre/post)",
                               ["stage"], buckets=STAGE_BUCKETS, registry=registry)
        self._counted = LoopStats()  # what the counters hold so far
        self._stage_ms: dict[str, float] = {}
        self._reconnects = 0

    def on_frame(self, stats: LoopStats) -> None:
        """After each tracked frame, on the loop thread: a few additions."""
        self.sync(stats)
        figure = stats.latency if self.source.is_live else stats.step
        self.latency.observe(figure.last_ms() / MS_PER_S)
        for stage, total_ms in stats.stage_ms.items():
            self.stage.labels(stage).observe((total_ms - self._stage_ms.get(stage, 0.0)) / MS_PER_S)
            self._stage_ms[stage] = total_ms

    def sync(self, stats: LoopStats) -> None:
        """Bring the counters to the loop's counts (also after the loop, which counts its last drops then)."""
        self.frames.inc(stats.frames - self._counted.frames)
        self.dropped.inc(stats.dropped - self._counted.dropped)
        self._counted.frames, self._counted.dropped = stats.frames, stats.dropped

    def client_lost(self, lost: int) -> None:
        """An SSE client lost `lost` events (the broadcaster's `on_lost`)."""
        self.events_dropped.inc(lost)

    def count_clients(self, connected: Callable[[], int]) -> None:
        """Where `samurai_sse_clients` is read when scraped."""
        self.sse_clients.set_function(connected)

    def exposition(self) -> bytes:
        """The text a scrape gets, with what can change between frames read now."""
        reconnects = getattr(self.source, "reconnects", 0)
        self.reconnects.inc(reconnects - self._reconnects)
        self._reconnects = reconnects
        self.source_up.set(0 if getattr(self.source, "down_since", None) is not None else 1)
        status = self.controller.status()
        self.fps.set(status["fps"])
        states = [obj["state"] for obj in status["objects"].values()]
        for state in STATES:
            self.objects.labels(state).set(states.count(state))
        return generate_latest(self.registry)
