"""The result stream's sinks that the command line names: `--events` (JSON lines) and `--publish` (MQTT).

They open in two steps: the file before any model loads (a path that cannot be written is bad input, found at
once), the broker once the run's controller exists (commands come in on PREFIX/cmd). The run's stacks close them.
"""

from __future__ import annotations

from contextlib import ExitStack

from app.live.control import TrackController
from app.publish.events import Sink
from app.publish.jsonl import JsonLinesSink
from app.publish.mqtt import BrokerAddress, MqttPublisher


def open_sinks(events: str | None, stack: ExitStack) -> list[Sink]:
    """The result stream's sinks given on the command line, checked before any model loads."""
    sinks: list[Sink] = []
    if events:
        sinks.append(JsonLinesSink(events))
        stack.callback(sinks[-1].close)
    return sinks


def add_publisher(sinks: list[Sink], broker: BrokerAddress | None, controller: TrackController,
                  stack: ExitStack) -> list[Sink]:
    """The sinks with the broker's publisher after them when --publish names one (its commands go to
    `controller`, as the page's do)."""
    if broker is None:
        return sinks
    publisher = MqttPublisher(broker, controller)
    stack.callback(publisher.close)
    return [*sinks, publisher]
