"""The page in a real headless Chromium (Debian's chromium and chromium-driver, driven by Selenium).

`app/run.py --serve 0.0.0.0:PORT` on the colour demo clip without a box: the page
must hold the first frame, a mouse drag over the red target must start tracking,
overlay frames must arrive, `/api/status` must put the box on the target, a
second drag with "A box starts over" ticked must restart, and Stop must end the
run with complete outputs.

Clicks: a click and a shift-click on the picture reach the server as a positive
and a negative point, in source pixels, on the frame the page showed. The
server is bound to every interface, so it needs the token: without it the browser
gets 401. Every request goes to 127.0.0.1.

Several objects: on a loopback server (no token), a drag starts object 1, "New
object" then a drag start object 2, the page's table lists both with their
state, and the second row's Drop button stops object 2 while object 1 goes on.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from app.benchmarks.metrics import box_iou
from app.media.colour_clip import make_frames, make_leave_frames
from app.media.textured_clip import write_clip
from tests.chromium import browser  # noqa: F401 - the headless Chromium fixture
from tests.live_helpers import free_port, start_run, stop_process, wait_for

# Long enough that tracking is still going while the test looks at it.
CLIP_FRAMES = 300
MIN_IOU = 0.5
# A drag lands on whole CSS pixels of a canvas scaled down from the source: a pixel or two off on each edge.
DRAG_MIN_IOU = 0.8
OVERLAY_FRAMES = 3
PAGE_TIMEOUT_S = 60.0
TRACK_TIMEOUT_S = 180.0
EXIT_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory):
    frames, boxes = make_frames(CLIP_FRAMES)
    folder = tmp_path_factory.mktemp("browser") / "clip"
    write_clip(folder, frames, boxes)
    return folder, np.asarray(boxes, dtype=np.float64)


def _viewer(driver) -> dict:
    return driver.execute_script("return window.viewer")


def _canvas(driver):
    """The page's canvas, its shown size in CSS pixels and the CSS pixels per source pixel."""
    canvas = driver.find_element(By.ID, "view")
    rect = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.width, r.height, arguments[0].width];", canvas
    )
    return canvas, rect, rect[0] / rect[2]


def _drag(driver, box) -> None:
    """Drag the mouse over `box` (source pixels) on the page's canvas."""
    canvas, rect, scale = _canvas(driver)
    x, y, w, h = (float(v) * scale for v in box)
    start = (round(x - rect[0] / 2), round(y - rect[1] / 2))
    ActionChains(driver).move_to_element_with_offset(canvas, *start).click_and_hold().move_by_offset(
        round(w / 2), round(h / 2)
    ).move_by_offset(round(w / 2), round(h / 2)).release().perform()


def _on_target(now: dict, truth: np.ndarray) -> bool:
    if now["state"] != "tracking" or now["box"] is None:
        return False
    return box_iou(np.asarray([now["box"]], float), truth[now["frame"]][None])[0] >= MIN_IOU


def test_page_draw_track_restart_stop(long_clip, demo_models, browser, tmp_path):
    folder, truth = long_clip
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    out, log = tmp_path / "out", tmp_path / "run.log"
    run = start_run(
        ["--video", str(folder), "--model-dir", str(demo_models), "--backend", "onnx", "--output", str(out),
         "--no-display", "--serve", f"0.0.0.0:{port}"],
        log,
    )
    try:
        token = wait_for(lambda: re.findall(r"\?token=([\w-]+)", log.read_text()), PAGE_TIMEOUT_S, "the token", run, log)
        assert len(token) == 1, "the token is printed once"
        browser.get(base + "/")
        assert "401" in browser.title or "wrong token" in browser.find_element(By.TAG_NAME, "body").text

        browser.get(f"{base}/?token={token[0]}")
        wait_for(lambda: _viewer(browser)["frames"] >= 1, PAGE_TIMEOUT_S, "the first frame on the page", run, log)
        assert _viewer(browser)["shown"] == 0
        assert "token" not in browser.current_url, "the token is taken off the address bar"
        assert browser.find_element(By.ID, "state").text == "waiting"
        browser.save_screenshot(str(tmp_path / "waiting.png"))

        _drag(browser, truth[0])
        first = wait_for(lambda: (s := _api(browser, base)) and _on_target(s, truth) and s, TRACK_TIMEOUT_S,
                         "tracking on the target", run, log)
        shown = _viewer(browser)["frames"]
        wait_for(lambda: _viewer(browser)["frames"] >= shown + OVERLAY_FRAMES, TRACK_TIMEOUT_S, "overlay frames",
                 run, log)
        browser.save_screenshot(str(tmp_path / "tracking.png"))
        assert "started tracking box" in log.read_text()
        # A folder is read ahead: the page shows the tracker's step time, not a queue-inflated latency.
        assert browser.find_element(By.ID, "latency-label").text == "Step time"
        assert browser.find_element(By.ID, "latency").text.endswith(" ms")

        browser.find_element(By.ID, "reset-box").click()  # a box then starts the object over
        again = _viewer(browser)["shown"]
        _drag(browser, truth[again])
        wait_for(lambda: "restarted tracking box" in log.read_text(), TRACK_TIMEOUT_S, "the restart", run, log)
        # The restart prompts the frame the box was drawn on (the picture may move on between reading its index
        # and the drag), with the drawn box.
        restart = re.search(r"restarted tracking box ([-\d.,]+) as object \d+ from frame (\d+)", log.read_text())
        assert restart and int(restart[2]) >= again, (again, restart)
        after = wait_for(lambda: (s := _api(browser, base)) and s["frame"] > int(restart[2]) and _on_target(s, truth)
                         and s, TRACK_TIMEOUT_S, "tracking after the restart", run, log)
        assert after["frame"] > first["frame"]
        drawn = np.asarray([restart[1].split(",")], float)
        assert box_iou(drawn, truth[again][None])[0] >= DRAG_MIN_IOU

        browser.find_element(By.ID, "stop").click()
        assert run.wait(EXIT_TIMEOUT_S) == 0, log.read_text()[-3000:]
    finally:
        stop_process(run)
    summary = json.loads((out / "summary.json").read_text())
    lines = (out / "track.txt").read_text().splitlines()
    assert summary["frames"] >= OVERLAY_FRAMES and len(lines) >= summary["frames"]
    assert token[0] not in (out / "summary.json").read_text()


def _api(driver, base: str) -> dict | None:
    """/api/status through the browser, which holds the token in its cookie."""
    text = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch('/api/status').then(r => r.ok ? r.text() : null).then(done, () => done(null));"
    )
    return json.loads(text) if text else None



SECOND_BOX = (200, 20, 40, 40)


def _objects(driver, base: str) -> dict:
    now = _api(driver, base)
    return now["objects"] if now else {}


def _table(driver) -> list[list[str]]:
    """(id, state) per row of the page's object table, read in one go (rows update every status poll)."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#objects tbody tr')].map(r => [r.dataset.id, r.children[1].textContent])"
    )


def _leave_run(demo_models, tmp_path):
    """`app/run.py --serve` on a loopback port (no token) over the leave clip, waiting on its first frame; the
    run, its log, the page's address and the clip's boxes."""
    frames, boxes = make_leave_frames(CLIP_FRAMES)
    folder = tmp_path / "leave"
    write_clip(folder, frames, boxes)
    port = free_port()
    log = tmp_path / "run.log"
    run = start_run(["--video", str(folder), "--model-dir", str(demo_models), "--backend", "onnx",
                     "--output", str(tmp_path / "out"), "--no-display", "--serve", str(port)], log)
    return run, log, f"http://127.0.0.1:{port}", boxes


def _open_page(browser, base: str, run, log) -> None:
    wait_for(lambda: "open http" in log.read_text(), PAGE_TIMEOUT_S, "the server", run, log)
    browser.get(base + "/")
    wait_for(lambda: _viewer(browser)["frames"] >= 1, PAGE_TIMEOUT_S, "the first frame on the page", run, log)


def test_page_draws_several_objects_and_drops_one(demo_models, browser, tmp_path):
    run, log, base, boxes = _leave_run(demo_models, tmp_path)
    try:
        _open_page(browser, base, run, log)
        _drag(browser, boxes[0])
        wait_for(lambda: "1" in _objects(browser, base), TRACK_TIMEOUT_S, "object 1 from the page", run, log)
        browser.find_element(By.ID, "new-object").click()
        assert browser.find_element(By.ID, "object-id").get_attribute("value") == "2"
        _drag(browser, SECOND_BOX)
        wait_for(lambda: _objects(browser, base).keys() == {"1", "2"}, TRACK_TIMEOUT_S, "object 2 from the page",
                 run, log)
        table = wait_for(lambda: len(t := _table(browser)) == 2 and t, TRACK_TIMEOUT_S, "both objects in the table")
        assert [object_id for object_id, _ in table] == ["1", "2"]
        assert all(state in ("tracking", "lost") for _, state in table), table
        browser.find_element(By.CSS_SELECTOR, '#objects tr[data-id="2"] button').click()
        wait_for(lambda: _objects(browser, base).keys() == {"1"}, TRACK_TIMEOUT_S, "object 2 dropped", run, log)
        wait_for(lambda: len(_table(browser)) == 1, TRACK_TIMEOUT_S, "the table without object 2")
        browser.find_element(By.ID, "stop").click()
        assert run.wait(EXIT_TIMEOUT_S) == 0, log.read_text()[-3000:]
    finally:
        stop_process(run)
    assert (tmp_path / "out" / "track.txt").is_file() and (tmp_path / "out" / "track_2.txt").is_file()


# Where the test clicks on the leave clip's first frame: on the target (positive), then beside it (negative).
CLICKS = [((40, 120), False), ((100, 60), True)]
# A click lands on a whole CSS pixel of a canvas scaled from the source: a pixel or two off.
CLICK_SLACK_PX = 2
REFUSED_ID = 256  # past the last object id (255): the server answers 400


def _click(driver, point, shift: bool) -> None:
    """Click (with shift held when `shift`) at `point` (source pixels) on the page's canvas."""
    canvas, rect, scale = _canvas(driver)
    offset = (round(point[0] * scale - rect[0] / 2), round(point[1] * scale - rect[1] / 2))
    chain = ActionChains(driver).move_to_element_with_offset(canvas, *offset)
    if shift:
        chain = chain.key_down(Keys.SHIFT).click().key_up(Keys.SHIFT)
    else:
        chain = chain.click()
    chain.perform()


def test_a_click_and_a_shift_click_arrive_as_points_on_the_frame_shown(demo_models, browser, tmp_path):
    run, log, base, _ = _leave_run(demo_models, tmp_path)
    try:
        _open_page(browser, base, run, log)
        for number, (point, negative) in enumerate(CLICKS, start=1):
            before = _viewer(browser)["shown"]
            _click(browser, point, negative)
            answers = wait_for(lambda: len(a := _viewer(browser)["answers"]) >= number and a, PAGE_TIMEOUT_S,
                               f"the server's answer to click {number}", run, log)
            after = _viewer(browser)["shown"]
            answer = answers[number - 1]
            assert answer["kind"] == "points" and answer["id"] == 1, answer
            assert before <= answer["frame"] <= after, (before, answer, after)
            assert answer["labels"] == [0 if negative else 1], answer
            (sent,) = answer["points"]
            assert max(abs(sent[0] - point[0]), abs(sent[1] - point[1])) <= CLICK_SLACK_PX, (sent, point)
        assert _viewer(browser)["answers"][0]["frame"] == 0, "the file holds its first frame until a prompt comes"
        # A click the server refuses (400: no object 256) is not kept: Undo still takes back the shift-click.
        browser.execute_script(f"document.getElementById('object-id').value = {REFUSED_ID}")
        _click(browser, CLICKS[0][0], False)
        wait_for(lambda: "is not an object id" in browser.find_element(By.ID, "message").text, PAGE_TIMEOUT_S,
                 "the refusal shown", run, log)
        browser.execute_script("document.getElementById('object-id').value = 1")
        browser.find_element(By.ID, "undo").click()  # an exact undo of the shift-click, on its frame
        answers = wait_for(lambda: len(a := _viewer(browser)["answers"]) > len(CLICKS) and a, PAGE_TIMEOUT_S,
                           "the server's answer to Undo", run, log)
        assert answers[-1] == {"frame": answers[-2]["frame"], "id": 1, "kind": "undo", "undo": True}, answers[-1]
        browser.find_element(By.ID, "stop").click()
        assert run.wait(EXIT_TIMEOUT_S) == 0, log.read_text()[-3000:]
    finally:
        stop_process(run)
