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

from scripts.make_demo_clip import make_leave_frames, write_clip
from tests.live_helpers import free_port, http, start_run, status, stop_process, wait_for

# Long enough that the run is still going while the test adds and drops objects on a busy machine.
CLIP_FRAMES = 400
START_TIMEOUT_S = 120.0
STEP_TIMEOUT_S = 60.0
SECOND_BOX = [200, 20, 40, 40]


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    frames, boxes = make_leave_frames(CLIP_FRAMES)
    folder = tmp_path_factory.mktemp("web") / "long_clip"
    write_clip(folder, frames, boxes)
    return folder, [int(v) for v in boxes[0]]


def _objects(base: str) -> dict:
    return status(base)["objects"]


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
        both = wait_for(lambda: (o := _objects(base)).keys() == {"1", "2"} and o, STEP_TIMEOUT_S, "two objects", process, log)
        assert all(o["state"] in ("tracking", "lost") for o in both.values()), both
        assert status(base)["state"] == both["1"]["state"]  # the top-level fields are object 1's
        # A new box for a tracked object restarts it.
        code, body = http("POST", f"{base}/api/track", {"id": 2, "box": first_box})
        assert code == 200, body
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

