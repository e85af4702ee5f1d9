"""`GET /healthz`: 200 while the source delivers and the loop advances, else 503 with the reason.

For a supervisor or a load balancer: the answer is one line of text. The loop
counts as stuck when it has published nothing (no frame, no wait for a box) for
longer than the stream timeout, the time after which a source counts as gone.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from app.live.control import ENDED, TrackController
from app.media.sources import FrameSource

HTTP_OK, HTTP_UNAVAILABLE = 200, 503


@dataclass(frozen=True)
class HealthCheck:
    source: FrameSource
    controller: TrackController
    stuck_s: float

    def __call__(self) -> tuple[int, str]:
        now = time.monotonic()
        down_since = getattr(self.source, "down_since", None)
        if down_since is not None:
            return HTTP_UNAVAILABLE, f"the source has delivered no frame for {now - down_since:.0f} s; reconnecting"
        status = self.controller.status()
        if status["state"] == ENDED:
            return HTTP_UNAVAILABLE, "the run has ended"
        published = self.controller.published_at
        if published is None:
            return HTTP_UNAVAILABLE, "starting: the models are loading"
        if now - published > self.stuck_s:
            return HTTP_UNAVAILABLE, f"the loop has not advanced for {now - published:.0f} s"
        return HTTP_OK, "ok"
