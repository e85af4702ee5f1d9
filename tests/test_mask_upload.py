"""The mask as a PNG upload: `POST /api/prompts?frame=K&id=N` with `Content-Type: image/png` and the PNG as the
body, over real HTTP to an in-process `WebServer`: the command it queues, its bad inputs, the prompts route's cap
(sized for a 4K frame's mask), and the request guard's rule that lets exactly this route take exactly this type."""

from __future__ import annotations

import base64
import json
from http.client import HTTPConnection

import cv2
import numpy as np
import pytest

from app.live.control import LoopStatus, ObjectStatus, TrackController
from app.serve.hub import FrameHub
from app.serve.server import MAX_BODY_BYTES, MAX_PROMPT_BYTES, WebServer
from tests.live_helpers import HTTP_TIMEOUT_S, free_port

WIDTH, HEIGHT = 64, 48
FOUR_K = (3840, 2160)
# What the loop is said to hold: frames 3..7 of a 5-frame history, object 1 tracked.
HELD, HISTORY = range(3, 8), 5
PNG, JSON = "image/png", "application/json"
UPLOAD = "/api/prompts?frame={frame}&id={id}"
FOREIGN = "attacker.example"
# What a cross-site form sends without a preflight; the state-changing routes other than the upload's.
FORM_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
OTHER_CHANGES = [("POST", "/api/track"), ("DELETE", "/api/track/1"), ("POST", "/api/stop")]


def _png(mask: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", mask.astype(np.uint8) * 255)
    assert ok
    return data.tobytes()


def _noise(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A mask of pixel noise: the worst case for PNG's compression."""
    return np.random.default_rng(seed).random((size[1], size[0])) < 0.5


class Server:
    """A loopback server whose controller is told the loop holds HELD with object 1 tracked."""

    def __init__(self, size: tuple[int, int]):
        self.controller = TrackController(size)
        self.controller.publish(LoopStatus(frame=HELD.stop - 1, objects={1: ObjectStatus("tracking")}, held=HELD,
                                           history=HISTORY))
        self.server = WebServer(self.controller, FrameHub(), "127.0.0.1", free_port())

    def send(self, path: str, body: bytes, content_type: str, headers: dict | None = None,
             method: str = "POST") -> tuple[int, str]:
        connection = HTTPConnection("127.0.0.1", self.server.port, timeout=HTTP_TIMEOUT_S)
        try:
            connection.request(method, path, body=body, headers={"Content-Type": content_type, **(headers or {})})
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()


@pytest.fixture
def server():
    served = Server((WIDTH, HEIGHT))
    yield served
    served.server.close()


def _queued(controller: TrackController) -> list[tuple]:
    return [(q.command.frame, q.command.prompt.obj_id, q.command.kind, q.command.prompt.mask)
            for q in controller.take_commands()]


def test_an_upload_queues_the_mask_that_base64_does(server):
    mask = _noise((WIDTH, HEIGHT))
    code, answer = server.send(UPLOAD.format(frame=5, id=2), _png(mask), PNG)
    assert code == 200 and json.loads(answer) == {"prompts": [{"frame": 5, "id": 2, "kind": "mask"}]}
    ((frame, obj_id, kind, uploaded),) = _queued(server.controller)
    assert (frame, obj_id, kind) == (5, 2, "mask") and np.array_equal(uploaded, mask)
    sent = json.dumps({"frame": 5, "id": 2, "mask": base64.b64encode(_png(mask)).decode()}).encode()
    assert server.send("/api/prompts", sent, JSON)[0] == 200
    ((*named, as_base64),) = _queued(server.controller)
    assert named == [5, 2, "mask"] and np.array_equal(as_base64, mask)
    # Parameters of the type (a charset a client adds) change nothing.
    assert server.send(UPLOAD.format(frame=7, id=1), _png(mask), f"{PNG}; charset=binary")[0] == 200
    assert [q[:3] for q in _queued(server.controller)] == [(7, 1, "mask")]


def _declaring(width: int, height: int) -> bytes:
    """A small PNG whose header declares width x height (a decoder would allocate that much before reading on)."""
    png = bytearray(_png(np.ones((HEIGHT, WIDTH), bool)))
    png[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    return bytes(png)


# name → (path, body, the words of the one-line answer)
GOOD = _png(np.ones((HEIGHT, WIDTH), bool))
BAD_UPLOADS = {
    "not a PNG": (UPLOAD.format(frame=5, id=1), b"GIF89a not a png", "is not a PNG image"),
    "no body": (UPLOAD.format(frame=5, id=1), b"", "is not a PNG image"),
    "a JPEG": (UPLOAD.format(frame=5, id=1), cv2.imencode(".jpg", np.full((HEIGHT, WIDTH), 255, np.uint8))[1].tobytes(),
               "is not a PNG image"),
    "a PNG bomb": (UPLOAD.format(frame=5, id=1), _declaring(32768, 32768), "is 32768x32768, larger than any frame"),
    "empty mask": (UPLOAD.format(frame=5, id=1), _png(np.zeros((HEIGHT, WIDTH), bool)), "the mask is empty"),
    "wrong size": (UPLOAD.format(frame=5, id=1), _png(np.ones((8, 8), bool)), f"the mask is 8x8 but the frame is "
                                                                                f"{WIDTH}x{HEIGHT}"),
    "no frame": ("/api/prompts?id=1", GOOD, "no frame given; send the mask PNG as the body"),
    "no id": ("/api/prompts?frame=5", GOOD, "no id given; send the mask PNG as the body"),
    "frame not a number": (UPLOAD.format(frame="x", id=1), GOOD, "frame 'x' is not an integer from 0"),
    "negative frame": (UPLOAD.format(frame=-1, id=1), GOOD, "frame '-1' is not an integer from 0"),
    "id out of range": (UPLOAD.format(frame=5, id=0), GOOD, "id 0 is not an object id"),
    "frame in the future": (UPLOAD.format(frame=8, id=1), GOOD, "frame 8 is in the future"),
    "frame past the history": (UPLOAD.format(frame=2, id=1), GOOD, f"prompts can go back {HISTORY} frames"),
}


@pytest.mark.parametrize("name", BAD_UPLOADS)
def test_a_bad_upload_gets_400_and_one_line(server, name):
    path, body, words = BAD_UPLOADS[name]
    code, answer = server.send(path, body, PNG)
    error = json.loads(answer)["error"]
    assert code == 400 and words in error and "\n" not in error and "Traceback" not in error, error
    assert server.controller.take_commands() == []


def test_the_cap_takes_a_4k_noise_mask_and_refuses_more():
    """MAX_PROMPT_BYTES is sized for the largest source frame's mask: a 4K mask of noise, over the 16 KiB of the
    other routes, fits as an upload and as base64; a body past the cap is 413, also sent without a length."""
    served = Server(FOUR_K)
    try:
        mask = _noise(FOUR_K)
        png = _png(mask)
        sent = json.dumps({"frame": 5, "id": 1, "mask": base64.b64encode(png).decode()}).encode()
        assert MAX_BODY_BYTES < len(png) < len(sent) < MAX_PROMPT_BYTES
        assert served.send(UPLOAD.format(frame=5, id=1), png, PNG)[0] == 200
        assert served.send("/api/prompts", sent, JSON)[0] == 200
        assert [np.array_equal(queued[3], mask) for queued in _queued(served.controller)] == [True, True]
        too_big = png + bytes(MAX_PROMPT_BYTES + 1 - len(png))
        code, answer = served.send(UPLOAD.format(frame=5, id=1), too_big, PNG)
        assert code == 413 and str(MAX_PROMPT_BYTES) in json.loads(answer)["error"]
        connection = HTTPConnection("127.0.0.1", served.server.port, timeout=HTTP_TIMEOUT_S)
        try:
            connection.request("POST", UPLOAD.format(frame=5, id=1), body=iter([too_big[:1000], too_big[1000:]]),
                               headers={"Content-Type": PNG}, encode_chunked=True)
            assert connection.getresponse().status == 413
        finally:
            connection.close()
        assert served.controller.take_commands() == []
    finally:
        served.server.close()


# -- the request guard: this route, this type, and nothing more --------------------------------------------------

def test_only_the_prompts_route_takes_a_png(server):
    body = _png(np.ones((HEIGHT, WIDTH), bool))
    for method, path in OTHER_CHANGES:
        code, answer = server.send(path, body, PNG, method=method)
        assert code == 415 and "application/json" in json.loads(answer)["error"], path
    assert not server.controller.stopped and server.controller.take_commands() == []


def test_a_cross_site_upload_is_refused(server):
    """A foreign page's PNG upload (which its browser would preflight first) is 403, and a form's types stay 415 on
    the upload's route and query; the page's own upload and a program's (no Origin) are taken."""
    port, path = server.server.port, UPLOAD.format(frame=5, id=1)
    body = _png(np.ones((HEIGHT, WIDTH), bool))
    code, answer = server.send(path, body, PNG, {"Origin": f"http://{FOREIGN}"})
    assert code == 403 and FOREIGN in json.loads(answer)["error"]
    for form_type in FORM_TYPES:
        assert server.send(path, body, form_type)[0] == 415, form_type
    assert server.controller.take_commands() == []
    for headers in ({"Origin": f"http://127.0.0.1:{port}"}, {}):
        code, answer = server.send(path, body, PNG, headers)
        assert code == 200, answer
    assert [q.command.kind for q in server.controller.take_commands()] == ["mask", "mask"]
