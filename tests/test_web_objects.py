"""Objects added, restarted and dropped while running, through the web API of a real `app/run.py --serve`.

Design. The run reads a long colour clip from a folder and waits for a box
(no --bbox); the test posts boxes for objects 1 and 2 as the page does, sees
both in /api/status, drops object 2 with DELETE and sees it go while object 1
goes on, checks the API's answers to ids it does not know or cannot take,
then stops the run from the API. Object 1 is the default object, so it writes
track.txt; object 2, added from the page, writes track_2.txt up to its drop.
tests/test_browser.py does the same with the mouse on the page.
"""

from __future__ import annotations

import json

import pytest

from app.media.colour_clip import make_leave_frames
from app.media.textured_clip import write_clip
from tests.live_helpers import free_port, http, start_run, status, stop_process, wait_for

# Long enough that the run is still going while the test adds and drops objects on a busy machine.
CLIP_FRAMES = 400
START_TIMEOUT_S = 120.0
STEP_TIMEOUT_S = 60.0
SECOND_BOX = [200, 20, 40, 40]
# Two boxes of the same target from the same frame differ by a pixel or so at the edges.
SAME_TARGET_IOU = 0.7


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    frames, boxes = make_leave_frames(CLIP_FRAMES)
    folder = tmp_path_factory.mktemp("web") / "long_clip"
    write_clip(folder, frames, boxes)
    return folder, [int(v) for v in boxes[0]]


def _objects(base: str) -> dict:
    return status(base)["objects"]


def _box_iou(a: list[float] | None, b: list[float] | None) -> float:
    """IoU of two x, y, w, h boxes; 0 when either is missing."""
    if not a or not b:
        return 0.0
    inter_w = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def test_api_adds_restarts_and_drops_objects(demo_models, long_clip, tmp_path):
    folder, first_box = long_clip
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    out, log = tmp_path / "out", tmp_path / "run.log"
    process = start_run(["--video", str(folder), "--model-dir", str(demo_models), "--output", str(out), "--no-display",
                         "--backend", "onnx", "--serve", str(port)], log)
    try:
        wait_for(lambda: status(base)["state"] == "waiting", START_TIMEOUT_S, "the page", process, log)
        code, body = http("POST", f"{base}/api/track", {"box": first_box})
        assert code == 200 and json.loads(body)["id"] == 1, body
        code, body = http("POST", f"{base}/api/track", {"id": 2, "box": SECOND_BOX})
        assert code == 200 and json.loads(body) == {"id": 2, "box": SECOND_BOX}, body
        both = wait_for(lambda: (s := status(base))["objects"].keys() == {"1", "2"} and s, STEP_TIMEOUT_S,
                        "two objects", process, log)
        assert all(o["state"] in ("tracking", "lost") for o in both["objects"].values()), both
        # The top-level fields are object 1's, in the same answer.
        assert {k: both[k] for k in ("state", "box", "object_score")} == both["objects"]["1"], both
        # A new box for a tracked object restarts it: object 2 restarted on object 1's box follows the same target.
        target = wait_for(lambda: (o := _objects(base)["1"])["state"] == "tracking" and o["box"], STEP_TIMEOUT_S,
                          "object 1 on the target", process, log)
        restart_box = [round(v) for v in target]
        code, body = http("POST", f"{base}/api/track", {"id": 2, "box": restart_box})
        assert code == 200, body
        wait_for(lambda: f"restarted tracking box {','.join(map(str, restart_box))} as object 2" in log.read_text(),
                 STEP_TIMEOUT_S, "the restart with the new box", process, log)
        wait_for(lambda: _box_iou((o := _objects(base))["1"]["box"], o["2"]["box"]) >= SAME_TARGET_IOU, STEP_TIMEOUT_S,
                 "object 2 restarted on object 1's target", process, log)
        code, body = http("DELETE", f"{base}/api/track/2")
        assert code == 200 and json.loads(body) == {"id": 2, "state": "dropped"}, body
        wait_for(lambda: _objects(base).keys() == {"1"}, STEP_TIMEOUT_S, "object 2 dropped", process, log)
        frame_after_drop = status(base)["frame"]
        for bad in ({"id": 0, "box": first_box}, {"id": "2", "box": first_box}, {"id": True, "box": first_box}):
            code, body = http("POST", f"{base}/api/track", bad)
            assert code == 400 and "object id" in json.loads(body)["error"], (bad, body)
        code, body = http("DELETE", f"{base}/api/track/7")
        assert code == 404 and "not tracked" in json.loads(body)["error"], body
        wait_for(lambda: status(base)["frame"] > frame_after_drop, STEP_TIMEOUT_S, "object 1 going on", process, log)
        code, _ = http("POST", f"{base}/api/stop")
        assert code == 200
        assert process.wait(STEP_TIMEOUT_S) == 0, log.read_text()[-3000:]
    finally:
        stop_process(process)
    first = (out / "track.txt").read_text().splitlines()
    second = (out / "track_2.txt").read_text().splitlines()
    assert 0 < len(second) < len(first), (len(second), len(first))
    summary = json.loads((out / "summary.json").read_text())
    added = summary["objects"]["2"]
    assert added["prompt_box"] is None and 0 < added["frames"] <= len(second)

