"""The web server's API without a tracker: status, prompts, bad boxes, stop, the stream, tokens, ports."""

from __future__ import annotations

import json
import socket
from http.client import HTTPConnection

import numpy as np
import pytest

from app import run
from app.live.control import LoopStatus, TrackController
from app.media.prompt import PromptError, parse_bbox, validate_bbox
from app.serve.address import ServeError, is_loopback, parse_serve
from app.serve.hub import FrameHub
from app.serve.server import WebServer
from tests.live_helpers import free_port, http

WIDTH, HEIGHT = 64, 48


@pytest.fixture
def served():
    controller, hub = TrackController((WIDTH, HEIGHT)), FrameHub()
    server = WebServer(controller, hub, "127.0.0.1", free_port())
    yield controller, hub, f"http://127.0.0.1:{server.port}"
    server.close()


def _cli_message(text: str) -> str:
    with pytest.raises(PromptError) as info:
        validate_bbox(parse_bbox(text), WIDTH, HEIGHT)
    return str(info.value)


def test_status_starts_waiting(served):
    _, _, base = served
    code, body = http("GET", f"{base}/api/status")
    assert code == 200
    assert json.loads(body) == {"state": "waiting", "frame": -1, "box": None, "fps": 0.0, "latency_ms": 0.0,
                                "step_ms": 0.0, "live": False, "dropped": 0, "object_score": None, "objects": {}}


@pytest.mark.parametrize(
    ("box", "cli"),
    [([10, 10, 0, 20], "10,10,0,20"), ([10, 10, 5, -3], "10,10,5,-3"), ([500, 500, 5, 5], "500,500,5,5"),
     (["ten", 10, 5, 5], "ten,10,5,5"), ([1, 2, 3], "1,2,3")],
)
def test_bad_box_gets_400_with_the_cli_message(served, box, cli):
    controller, _, base = served
    code, body = http("POST", f"{base}/api/track", {"box": box})
    assert code == 400 and json.loads(body)["error"] == _cli_message(cli)
    assert controller.take_commands() == []


@pytest.mark.parametrize("body", [{"box": "1,2,3,4"}, {"frame": 3}, {"box": [1, 2, 3, 4], "frame": "x"},
                                  {"box": [1, 2, 3, 4], "frame": -7}, {"box": [1, 2, 3, 4], "frame": True},
                                  {"box": [1, 2, 3, 4], "id": 0}, [1, 2, 3, 4]])
def test_malformed_requests_get_400(served, body):
    controller, _, base = served
    code, answer = http("POST", f"{base}/api/track", body)
    assert code == 400 and "\n" not in json.loads(answer)["error"]
    assert controller.take_commands() == []


def test_track_prompts_on_a_frame_the_loop_holds_and_refuses_others(served):
    """The loop holds frames 3..7 (a history of 5): a box on 7 is queued for 7; 8 is in the future, 2 gone."""
    controller, _, base = served
    controller.publish(LoopStatus(frame=7, held=range(3, 8), history=5))
    code, body = http("POST", f"{base}/api/track", {"box": [10, 10, 10, 10], "frame": 7})
    assert code == 200 and json.loads(body)["box"] == [10, 10, 10, 10]
    (queued,) = controller.take_commands()
    assert queued.command.frame == 7 and queued.command.prompt.reset
    code, body = http("POST", f"{base}/api/track", {"box": [1, 1, 60, 40], "frame": 8})
    assert code == 400 and "frame 8 is in the future" in json.loads(body)["error"]
    code, body = http("POST", f"{base}/api/track", {"box": [1, 1, 60, 40], "frame": 2})
    assert code == 400 and "prompts can go back 5 frames (to frame 3" in json.loads(body)["error"]
    assert controller.take_commands() == []


def test_stop(served):
    controller, _, base = served
    assert http("POST", f"{base}/api/stop")[0] == 200 and controller.stopped


def test_stream_sends_jpeg_parts_with_frame_index(served):
    _, hub, base = served
    image = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    hub.publish(3, image)
    connection = HTTPConnection(base.removeprefix("http://"), timeout=10)
    connection.request("GET", "/api/stream")
    response = connection.getresponse()
    assert response.status == 200 and "multipart/x-mixed-replace" in response.getheader("content-type")
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        head += response.read(1)
    headers = dict(line.split(": ", 1) for line in head.decode().strip().splitlines()[1:])
    assert headers["X-Frame-Index"] == "3"
    jpeg = response.read(int(headers["Content-Length"]))
    assert jpeg[:2] == b"\xff\xd8"
    connection.close()


def test_non_loopback_bind_needs_the_token():
    controller, hub = TrackController((WIDTH, HEIGHT)), FrameHub()
    # Bound to every interface but only ever called through loopback.
    server = WebServer(controller, hub, "0.0.0.0", free_port())
    base = f"http://127.0.0.1:{server.port}"
    try:
        assert server.token
        for method, path in (("GET", "/"), ("GET", "/api/status"), ("POST", "/api/stop"), ("GET", "/api/stream"),
                             ("GET", "/static/app.js")):
            assert http(method, f"{base}{path}")[0] == 401, path
        assert http("GET", f"{base}/api/status?token=wrong")[0] == 401
        assert http("GET", f"{base}/api/status", headers={"Authorization": "Bearer wrong"})[0] == 401
        assert not controller.stopped
        connection = HTTPConnection(f"127.0.0.1:{server.port}", timeout=10)
        connection.request("GET", f"/?token={server.token}")
        response = connection.getresponse()
        cookie = response.getheader("set-cookie").split(";")[0]
        assert response.status == 200 and b"SAMURAI" in response.read()
        assert http("GET", f"{base}/api/status", headers={"Cookie": cookie})[0] == 200
        assert http("GET", f"{base}/api/status", headers={"Authorization": f"Bearer {server.token}"})[0] == 200
    finally:
        server.close()


def test_given_token_on_loopback_is_required_too():
    server = WebServer(TrackController((WIDTH, HEIGHT)), FrameHub(), "127.0.0.1", free_port(), token="s3")
    try:
        assert http("GET", f"http://127.0.0.1:{server.port}/api/status")[0] == 401
        assert http("GET", f"http://127.0.0.1:{server.port}/api/status?token=s3")[0] == 200
    finally:
        server.close()


def test_port_in_use_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServeError) as info:
            WebServer(TrackController((WIDTH, HEIGHT)), FrameHub(), "127.0.0.1", port)
    assert f"127.0.0.1:{port}" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [("8080", ("127.0.0.1", 8080)), ("0.0.0.0:80", ("0.0.0.0", 80)), ("[::1]:9000", ("::1", 9000)),
     ("localhost:1", ("localhost", 1))],
)
def test_parse_serve(spec, expected):
    assert parse_serve(spec) == expected


@pytest.mark.parametrize("spec", ["", "host:", "80a", "0", "70000", "a:b"])
def test_parse_serve_rejects(spec):
    with pytest.raises(ServeError, match="needs a port"):
        parse_serve(spec)


def test_loopback():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.3.4.5", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "192.168.1.2", "::", "board.local"))


def test_cli_serve_errors_are_one_line(export_512, tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        for spec, message in (("99999", "needs a port"), (f"127.0.0.1:{taken.getsockname()[1]}", "cannot serve")):
            folder = tmp_path / "frames"
            folder.mkdir(exist_ok=True)
            from PIL import Image

            Image.fromarray(np.zeros((HEIGHT, WIDTH, 3), np.uint8)).save(folder / "0.png")
            code = run.main(["--video", str(folder), "--model-dir", str(export_512), "--output", str(tmp_path / "o"),
                             "--serve", spec, "--backend", "onnx"])
            errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ERROR")]
            assert code == run.EXIT_BAD_INPUT and len(errors) == 1 and message in errors[0]
