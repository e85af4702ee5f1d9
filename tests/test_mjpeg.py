"""`app/run.py --video http://...` on an MJPEG stream from a real HTTP server that the test starts.

The server repeats one frame of the colour demo clip, so the red target stands still: every tracked box must
be on it. The stream never ends by itself; --max-frames ends the run.
"""

from __future__ import annotations

import json

import numpy as np

from app import run
from app.benchmarks.metrics import box_iou
from app.media.colour_clip import make_frames
from tests.mjpeg_server import MjpegServer

STREAM_FPS = 25.0
TRACKED = 4
# JPEG blurs the target's edges by a pixel; the colour model's mask box is tight otherwise.
MIN_IOU = 0.7


def test_http_mjpeg_stream(demo_models, tmp_path, capsys):
    frames, boxes = make_frames(2)
    server = MjpegServer(frames[:1], STREAM_FPS)
    out = tmp_path / "out"
    x, y, w, h = boxes[0]
    try:
        code = run.main(["--video", server.url, "--bbox", f"{x},{y},{w},{h}", "--model-dir", str(demo_models),
                         "--output", str(out), "--no-display", "--backend", "onnx", "--max-frames", str(TRACKED)])
    finally:
        server.close()
    assert code == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["frames"] == TRACKED and summary["source"] == server.url
    tracked = [line for line in (out / "track.txt").read_text().splitlines() if line != "0,0,0,0"]
    assert len(tracked) == TRACKED
    ious = box_iou(np.array([[float(v) for v in line.split(",")] for line in tracked]), np.tile(boxes[0], (TRACKED, 1)))
    assert ious.min() >= MIN_IOU, ious
    assert server.served > TRACKED
