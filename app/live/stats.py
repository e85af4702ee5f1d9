"""The run's counts and timings (`LoopStats`): what the progress line, the metrics and the summary read."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.live.dispatch import AppliedPrompt
from app.live.latency import LatencyStats

MS_PER_S = 1000.0


@dataclass
class LoopStats:
    """Counts and timings of a run: `latency` is capture → result ready, `step` the tracker's own time per frame."""

    frames: int = 0
    tracking_s: float = 0.0
    stage_ms: dict[str, float] = field(default_factory=dict)
    latency: LatencyStats = field(default_factory=LatencyStats)
    step: LatencyStats = field(default_factory=LatencyStats)
    dropped: int = 0
    prompts: list[AppliedPrompt] = field(default_factory=list)  # every prompt applied, in order

    @property
    def fps(self) -> float:
        return self.frames / self.tracking_s if self.tracking_s > 0 else 0.0
