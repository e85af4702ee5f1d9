"""What the result stream costs the tracker: CPU per frame and object of MQTT to a local broker plus one SSE client.

    python scripts/bench_publish.py [--objects 3] [--fps 30] [--frames 150] [--rounds 4]

Frames of `--objects` tracked objects (states and boxes as the tracker gives them,
with a lost stretch) are handed at `--fps` to the loop's output as a run would:
with publishing (the event stream to a Mosquitto broker started here on a free
loopback port, and to `GET /api/events` read by a client in another process), and
without, alternated round by round. The process's CPU time (every thread: the
output thread, paho's network thread, the web server) is compared; the difference
per frame and object is the cost, printed against the 1 ms budget. The broker and
the SSE client run in processes of their own, as they would on a board.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from loguru import logger

from app.live.control import LoopStatus, ObjectStatus, TrackController
from app.live.tracked import Tracked
from app.media.sources import Frame
from app.publish.events import EventStream
from app.publish.mqtt import MqttPublisher, parse_publish_url
from app.publish.sse import SseBroadcaster
from app.samurai.boxes import box_or_missing
from app.samurai.results import FrameResult
from app.serve.hub import FrameHub
from app.serve.server import WebServer

MOSQUITTO = "/usr/sbin/mosquitto"
BUDGET_MS = 1.0
MS_PER_S = 1000.0
FRAME_SIZE = (640, 480)
BOX_SIZE = 40
# Object scores as the tracker gives them: seen (positive) and, for a stretch of each cycle, lost.
SEEN_SCORE, LOST_SCORE = 9.0, -4.0
LOST_EVERY, LOST_FOR = 60, 10
READY_S = 10.0
SSE_READER = ("import sys, urllib.request\n"
              "response = urllib.request.urlopen(sys.argv[1])\n"
              "while response.read(65536):\n    pass\n")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_port(port: int) -> None:
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def box_mask(x: int, y: int, size: int) -> np.ndarray:
    """The smallest mask whose box is x, y, size, size: its two corners set (no output here draws it)."""
    mask = np.zeros((y + size + 1, x + size + 1), bool)
    mask[y, x] = mask[y + size, x + size] = True
    return mask


def make_items(frames: int, objects: int) -> list[Tracked]:
    image = np.zeros((FRAME_SIZE[1], FRAME_SIZE[0], 3), np.uint8)
    empty = np.zeros((1, 1), bool)
    items = []
    for index in range(frames):
        lost = index % LOST_EVERY >= LOST_EVERY - LOST_FOR
        results = {}
        for object_id in range(1, objects + 1):
            score = LOST_SCORE if lost else SEEN_SCORE
            mask = empty if lost else box_mask(index % FRAME_SIZE[0], 50 * object_id, BOX_SIZE)
            results[object_id] = FrameResult(index, mask, mask, 0, 0.9, score, None, present=not lost)
        items.append(Tracked(Frame(index, image, index / 30.0), results))
    return items


def run_round(items: list[Tracked], fps: float, output, controller: TrackController) -> float:
    """CPU seconds of the whole process while `items` are handed to `output` (None: nothing) at `fps`."""
    start_cpu, start = time.process_time(), time.monotonic()
    for number, item in enumerate(items):
        if output is not None:
            output(item)
        controller.publish(LoopStatus(frame=item.frame.index, objects={
            object_id: ObjectStatus(result.state, box_or_missing(result.box), result.object_score)
            for object_id, result in item.results.items()}))
        time.sleep(max(start + (number + 1) / fps - time.monotonic(), 0.0))
    time.sleep(1.0 / fps)  # the network threads finish the last frame
    return time.process_time() - start_cpu


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=3)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--frames", type=int, default=150, help="frames per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds with and rounds without, alternated")
    args = parser.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    items = make_items(args.frames, args.objects)
    controller = TrackController(FRAME_SIZE)
    with tempfile.TemporaryDirectory() as tmp:
        broker_port, web_port = free_port(), free_port()
        config = Path(tmp) / "mosquitto.conf"
        config.write_text(f"listener {broker_port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        broker = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        server = reader = publisher = None
        try:
            wait_port(broker_port)
            broadcaster = SseBroadcaster(controller.status)
            server = WebServer(controller, FrameHub(), "127.0.0.1", web_port, events=broadcaster)
            publisher = MqttPublisher(parse_publish_url(f"mqtt://127.0.0.1:{broker_port}/bench"), controller)
            reader = subprocess.Popen([sys.executable, "-c", SSE_READER, f"http://127.0.0.1:{web_port}/api/events"])
            deadline = time.monotonic() + READY_S
            while not broadcaster.clients and time.monotonic() < deadline:
                time.sleep(0.05)
            stream = EventStream([publisher, broadcaster])
            cpu: dict[str, list[float]] = {"with": [], "without": []}
            for _ in range(args.rounds):
                for name, output in (("without", None), ("with", stream)):
                    cpu[name].append(run_round(items, args.fps, output, controller))
            lost = [client.lost for client in broadcaster.clients]
        finally:
            for closing in (publisher, server):
                if closing is not None:
                    closing.close()
            for process in (reader, broker):
                if process is not None:
                    process.terminate()
                    process.wait()
    per_frame_object = {name: MS_PER_S * statistics.median(values) / (args.frames * args.objects)
                        for name, values in cpu.items()}
    cost = per_frame_object["with"] - per_frame_object["without"]
    print(f"{args.rounds} rounds each of {args.frames} frames x {args.objects} objects at {args.fps:g} FPS, alternated")
    for name in ("without", "with"):
        rounds = ", ".join(f"{MS_PER_S * v:.0f}" for v in cpu[name])
        print(f"  {name:>7}: process CPU per round {rounds} ms; median {per_frame_object[name]:.3f} ms per frame "
              f"and object")
    print(f"publishing (MQTT to a local broker + one SSE client) costs {cost:.3f} ms CPU per frame and object "
          f"(budget {BUDGET_MS:g} ms: {'met' if cost <= BUDGET_MS else 'MISSED'}); SSE events lost: {sum(lost)}, "
          f"MQTT messages lost: {publisher.lost}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
