"""Forged requests to the page, over real HTTP to an in-process `WebServer`: a cross-site form, a foreign Origin,
a foreign Host (DNS rebinding), oversized and deeply nested bodies; and the bounded SSE metrics.

A web page the user visits can make the browser send a form (`text/plain`,
`application/x-www-form-urlencoded`, `multipart/form-data`) to 127.0.0.1 with
its own Origin and no preflight; a page served under a name the attacker points
at 127.0.0.1 sends that name as Host. The tests send exactly those headers
(http.client sends the Host it is given) and check both the answer and that the
run was left alone (no prompt queued, no object dropped, not stopped).
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
import struct
import time
import zlib
from http.client import HTTPConnection

import cv2
import numpy as np
import pytest
from loguru import logger
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import Mount

from app.live.control import TrackController
from app.media.outputs import MAX_OBJECT_ID
from app.media.sources import FolderSource
from app.live.health import HealthCheck
from app.serve.metrics import CONTENT_TYPE, RunMetrics
from app.publish.sse import SseBroadcaster
from app.samurai.boxes import Box
from app.serve.address import allowed_host_name, host_policy
from app.serve.hub import FrameHub
from app.serve.server import MAX_BODY_BYTES, MAX_PROMPT_BYTES, STATIC_DIR, Probes, WebServer, build_app
from tests.chromium import browser  # noqa: F401 - the headless Chromium fixture
from tests.live_helpers import HTTP_TIMEOUT_S, free_port, wait_for

WIDTH, HEIGHT = 64, 48
ALLOWED = "board.example"
FOREIGN = "attacker.example"
JSON = "application/json"
TRACK_BODY = json.dumps({"box": [1, 2, 20, 20]}).encode()
# What a cross-site form can send without a CORS preflight (the HTML spec's form encodings).
FORM_TYPES = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
ANY_METHOD = ("GET", "POST")  # a route that names no methods answers them all: read it, and forge a POST to it
SSE_CLIENTS = 40
QUEUE = 4
GAUGE_WAIT_S = 10.0
HEALTH_WITHOUT_LOOP = 503  # no loop has published: "starting"
DEEP = 2000  # brackets: past Python's recursion limit (1000), inside the body cap
UNREAD_S = 0.5  # a refusal from the header; decoding the bomb takes seconds


class Served:
    """A no-token loopback server with the metrics and health routes, as `app/run.py --serve PORT` builds it."""

    def __init__(self, tmp_path, host: str = "127.0.0.1", token: str | None = None):
        from PIL import Image

        Image.new("RGB", (WIDTH, HEIGHT)).save(tmp_path / "0.png")
        self.controller, self.hub = TrackController((WIDTH, HEIGHT)), FrameHub()
        self.hub.publish(0, np.zeros((HEIGHT, WIDTH, 3), np.uint8))
        self.metrics = RunMetrics(FolderSource(tmp_path), self.controller)
        probes = Probes(self.metrics.exposition, CONTENT_TYPE, HealthCheck(FolderSource(tmp_path), self.controller, 1.0))
        self.events = SseBroadcaster(self.controller.status, capacity=QUEUE, on_lost=self.metrics.client_lost)
        self.metrics.count_clients(lambda: len(self.events.clients))
        self.server = WebServer(self.controller, self.hub, host, free_port(), token, self.events, probes, [ALLOWED])
        self.port = self.server.port

    def send(self, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, bytes]:
        """One request with exactly these headers (a Host given here replaces http.client's own)."""
        connection = HTTPConnection("127.0.0.1", self.port, timeout=HTTP_TIMEOUT_S)
        try:
            connection.request(method, path, body=body, headers=headers or {})
            response = connection.getresponse()
            streaming = response.getheader("content-type", "").startswith(("multipart/", "text/event-stream"))
            return response.status, b"" if streaming else response.read()
        finally:
            connection.close()

    def untouched(self) -> bool:
        """Nothing reached the run: no prompt but the one queued at the start, no drop, no stop."""
        prompts = [queued.command.prompt for queued in self.controller.take_commands()]
        return ([p.obj_id for p in prompts] == [1] and prompts[0].box == START_BOX and not self.controller.stopped)


START_BOX = Box(30, 20, 10, 10)


def _route_table() -> list[tuple[str, str]]:
    """(method, path) of every route the server builds, with every optional part on (the SSE events, metrics and
    health): read from its route table, so that a route added later is forged against without a word here."""
    app = build_app(TrackController((WIDTH, HEIGHT)), FrameHub(), None, host_policy("127.0.0.1"),
                    SseBroadcaster(dict), Probes(bytes, CONTENT_TYPE, lambda: (200, "ok"))).app
    table = []
    for route in app.routes:
        if isinstance(route, Mount):  # static files: one real file under it
            table.append(("GET", f"{route.path}/{min(path.name for path in STATIC_DIR.iterdir())}"))
            continue
        path = re.sub(r"\{\w+(:int)?\}", "1", route.path)  # a path parameter: object 1, tracked in `served`
        table += [(method, path) for method in sorted(route.methods or ANY_METHOD) if method != "HEAD"]
    return table


ROUTES = _route_table()
# Every state-changing request the server answers, with a body that would change the run if it got through.
STATE_CHANGES = [(method, path, TRACK_BODY if method == "POST" else b"") for method, path in ROUTES
                 if method not in SAFE_METHODS]
READ_ROUTES = [path for method, path in ROUTES if method == "GET"]


@pytest.fixture
def served(tmp_path):
    served = Served(tmp_path)
    served.controller.track(START_BOX, 1)  # a tracked object that a forged DELETE could drop
    yield served
    served.server.close()


def _error(body: bytes) -> str:
    message = json.loads(body)["error"]
    assert "\n" not in message
    return message


def test_the_route_table_is_read():
    """The derived lists hold the routes docs/service.md documents (so the derivation reads a real table)."""
    assert {("POST", "/api/prompts"), ("POST", "/api/track"), ("DELETE", "/api/track/1"),
            ("POST", "/api/stop")} <= {(method, path) for method, path, _ in STATE_CHANGES}
    assert {"/", "/api/status", "/api/events", "/metrics", "/healthz"} <= set(READ_ROUTES)


@pytest.mark.parametrize(("method", "path", "body"), STATE_CHANGES)
@pytest.mark.parametrize("form_type", FORM_TYPES)
def test_a_cross_site_form_changes_nothing(served, method, path, body, form_type):
    port = served.port
    # As a browser sends it: the attacker's Origin, a form's type.
    code, answer = served.send(method, path, body, {"Host": f"127.0.0.1:{port}", "Origin": f"http://{FOREIGN}",
                                                   "Content-Type": form_type})
    assert code == 403 and FOREIGN in _error(answer)
    # The same without an Origin (as an old browser or a redirect might): the type alone is refused.
    code, answer = served.send(method, path, body, {"Host": f"127.0.0.1:{port}", "Content-Type": form_type})
    assert code == 415 and JSON in _error(answer)
    code, _ = served.send(method, path, body, {"Host": f"127.0.0.1:{port}"})  # no type at all
    assert code == 415
    assert served.untouched()


@pytest.mark.parametrize(("method", "path", "body"), STATE_CHANGES)
@pytest.mark.parametrize("origin", [f"http://{FOREIGN}", f"http://{FOREIGN}:{{port}}", "null",
                                    "http://127.0.0.1:1", "https://127.0.0.1", "file://", "http://[::1"])
def test_a_foreign_origin_is_refused_even_with_json(served, method, path, body, origin):
    code, answer = served.send(method, path, body, {"Host": f"127.0.0.1:{served.port}", "Content-Type": JSON,
                                                   "Origin": origin.format(port=served.port)})
    assert code == 403 and "only this server's own page" in _error(answer)
    assert served.untouched()


@pytest.mark.parametrize("host", [FOREIGN, f"{FOREIGN}:{{port}}", "localhost.attacker.example:{port}",
                                  "127.0.0.1.attacker.example", "10.0.0.7:{port}", "[::1", "127.0.0.1:x", ""])
def test_a_foreign_host_is_refused_on_every_route(served, host):
    host = host.format(port=served.port)
    for path in READ_ROUTES:
        code, answer = served.send("GET", path, headers={"Host": host})
        assert code == 403 and "--allowed-host" in _error(answer), path
    for method, path, body in STATE_CHANGES:
        code, _ = served.send(method, path, body, {"Host": host, "Content-Type": JSON})
        assert code == 403, path
    assert served.untouched()


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LocalHost", "[::1]:{port}",
                                  f"{ALLOWED}", f"{ALLOWED.upper()}.:8443"])
def test_the_allowed_names_are_served(served, host):
    host = host.format(port=served.port)
    for path in READ_ROUTES:
        code, _ = served.send("GET", path, headers={"Host": host})
        assert code == (HEALTH_WITHOUT_LOOP if path == "/healthz" else 200), path


def test_the_pages_own_requests_change_the_run(served):
    own = {"Host": f"127.0.0.1:{served.port}", "Origin": f"http://127.0.0.1:{served.port}",
           "Content-Type": "application/json; charset=utf-8"}
    served.controller.take_commands()
    code, answer = served.send("POST", "/api/track", json.dumps({"box": [4, 4, 20, 20], "id": 2}).encode(), own)
    assert code == 200 and json.loads(answer)["id"] == 2
    assert [q.command.prompt.obj_id for q in served.controller.take_commands()] == [2]
    served.controller.track(START_BOX, 1)
    assert served.send("DELETE", "/api/track/1", b"", own)[0] == 200
    assert [(q.command.prompt.obj_id, q.command.kind) for q in served.controller.take_commands()] == [
        (1, "reset"), (1, "remove")]
    # Behind a proxy that rewrites Host, the browser's Origin is the operator's name.
    proxied = {**own, "Origin": f"https://{ALLOWED}"}
    assert served.send("POST", "/api/stop", b"{}", proxied)[0] == 200 and served.controller.stopped


def test_a_program_without_origin_is_served(served):
    """curl and scripts send JSON and no Origin: the documented API keeps working."""
    code, _ = served.send("POST", "/api/stop", b"", {"Host": f"localhost:{served.port}", "Content-Type": JSON})
    assert code == 200 and served.controller.stopped


def test_a_wildcard_bind_serves_ip_addresses_and_its_name_but_no_foreign_name(tmp_path):
    """Prometheus scrapes a board by IP address (docs/service.md) with the token; a foreign name still gets 403."""
    served = Served(tmp_path, host="0.0.0.0", token="s3")
    bearer = {"Authorization": "Bearer s3"}
    try:
        for host in ("192.0.2.10:9000", "[2001:db8::1]", f"{socket.gethostname()}:{served.port}", ALLOWED):
            code, body = served.send("GET", "/metrics", headers={"Host": host, **bearer})
            assert code == 200 and b"samurai_frames_total" in body, host
            assert served.send("GET", "/healthz", headers={"Host": host, **bearer})[0] in (200, 503)
        assert served.send("GET", "/metrics", headers={"Host": FOREIGN, **bearer})[0] == 403
        assert served.send("POST", "/api/stop", b"", {"Host": FOREIGN, "Content-Type": JSON, **bearer})[0] == 403
        assert not served.controller.stopped
    finally:
        served.server.close()


def test_each_kind_of_refusal_is_logged_once(served):
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING", format="{message}")
    try:
        for _ in range(5):
            served.send("GET", "/api/status", headers={"Host": FOREIGN})
            served.send("POST", "/api/stop", b"", {"Host": "localhost", "Origin": f"http://{FOREIGN}",
                                                   "Content-Type": JSON})
            served.send("POST", "/api/stop", b"", {"Host": "localhost", "Content-Type": "text/plain"})
    finally:
        logger.remove(sink)
    assert len(lines) == 3, lines
    assert all(line.startswith("refused a request") and line.count("\n") == 1 for line in lines)
    assert [" 403" in line or "(403)" in line for line in lines] == [True, True, False]


def test_allowed_host_option_checks_the_name():
    assert allowed_host_name("Board.Example.") == "board.example"
    assert allowed_host_name("[::1]") == "::1"
    for bad in ("http://board", "board:8080", "board/x", "", "a..b", "-x.example", "x" * 300):
        with pytest.raises(Exception, match="not a host name"):
            allowed_host_name(bad)


# The routes that read a JSON body, and the most each reads.
BODY_ROUTES = [("/api/track", MAX_BODY_BYTES), ("/api/prompts", MAX_PROMPT_BYTES)]


@pytest.mark.parametrize(("path", "cap"), BODY_ROUTES)
def test_deeply_nested_json_gets_400(served, path, cap):
    host = {"Host": f"127.0.0.1:{served.port}", "Content-Type": JSON}
    deep_box = '{"box": ' + "[" * DEEP + "]" * DEEP + "}"
    for body in ("[" * DEEP + "]" * DEEP, deep_box, '{"a":' * DEEP + "1" + "}" * DEEP, f"[{deep_box}]"):
        assert len(body) <= cap
        code, answer = served.send("POST", path, body.encode(), host)
        assert code == 400 and "not JSON" in _error(answer), (path, body[:20])
    assert served.untouched()


@pytest.mark.parametrize(("path", "cap"), BODY_ROUTES)
def test_a_body_over_the_cap_gets_413(served, path, cap):
    host = {"Host": f"127.0.0.1:{served.port}", "Content-Type": JSON}
    padded = json.dumps({"box": [1, 2, 20, 20], "pad": "x" * cap}).encode()
    code, answer = served.send("POST", path, padded, host)
    assert code == 413 and str(cap) in _error(answer)
    # Sent in chunks without a length: counted as it comes.
    connection = HTTPConnection("127.0.0.1", served.port, timeout=HTTP_TIMEOUT_S)
    try:
        connection.request("POST", path, body=iter([padded[:1000], padded[1000:]]), headers=host,
                           encode_chunked=True)
        assert connection.getresponse().status == 413
    finally:
        connection.close()
    assert served.untouched()


BOMB_SIDE = 20_000  # a 1-bit PNG of 20000 x 20000 pixels compresses to ~50 KB and decodes to 400 MB


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bomb_png(side: int) -> bytes:
    """A 1-bit greyscale PNG (the PNG specification's layout, written here) of side x side, one pixel set."""
    row_bytes = (side + 7) // 8
    rows = b"\x00\x80" + bytes(row_bytes - 1) + (b"\x00" + bytes(row_bytes)) * (side - 1)  # filter byte per row
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows, 9))
            + _png_chunk(b"IEND", b""))


def test_a_small_mask_that_declares_a_huge_picture_is_refused_unread(served):
    """A decompression bomb under every door's size cap (MQTT's 64 KiB too): refused from its header, in far less
    time than decoding 400 MB takes, and so is a mask that is not a PNG (a JPEG decoder would take its size too)."""
    bomb = _bomb_png(BOMB_SIDE)
    assert len(bomb) < 64 * 1024
    host = {"Host": f"127.0.0.1:{served.port}", "Content-Type": JSON}
    started = time.monotonic()
    body = json.dumps({"id": 2, "mask": base64.b64encode(bomb).decode()}).encode()
    code, answer = served.send("POST", "/api/prompts", body, host)
    assert code == 400 and f"is {BOMB_SIDE}x{BOMB_SIDE}, larger than any frame" in _error(answer), answer
    assert time.monotonic() - started < UNREAD_S
    jpeg = cv2.imencode(".jpg", np.full((HEIGHT, WIDTH), 255, np.uint8))[1].tobytes()
    body = json.dumps({"id": 2, "mask": base64.b64encode(jpeg).decode()}).encode()
    code, answer = served.send("POST", "/api/prompts", body, host)
    assert code == 400 and "is not a PNG image" in _error(answer), answer
    assert served.untouched()


def test_a_request_holds_at_most_one_command_per_object(served):
    """A list over the limit is refused whole (each command would be applied or refused with a warning on the loop
    thread: 5000 in ~300 KB stalled the first frame for seconds and wrote 5000 warnings); the limit itself passes."""
    host = {"Host": f"127.0.0.1:{served.port}", "Content-Type": JSON}
    over = [{"id": 1, "points": [[5, 5]], "labels": [1]}] * (MAX_OBJECT_ID + 1)
    code, answer = served.send("POST", "/api/prompts", json.dumps(over).encode(), host)
    assert code == 400 and f"{MAX_OBJECT_ID + 1} commands in one request" in _error(answer), answer
    assert served.untouched()
    every_object = [{"id": obj_id, "box": [1, 1, 4, 4]} for obj_id in range(1, MAX_OBJECT_ID + 1)]
    code, answer = served.send("POST", "/api/prompts", json.dumps(every_object).encode(), host)
    assert code == 200 and len(json.loads(answer)["prompts"]) == MAX_OBJECT_ID, answer


def _samples(exposition: bytes, family: str) -> list[tuple[tuple, float]]:
    return [(tuple(sorted(s.labels.items())), s.value) for f in text_string_to_metric_families(exposition.decode())
            if f.name == family for s in f.samples]


def test_the_dropped_events_metric_keeps_one_series_however_many_clients_come_and_go(tmp_path):
    served = Served(tmp_path)
    served.server.close()  # the broadcaster and metrics alone, clients subscribed in this loop

    async def clients_come_and_go() -> int:
        lost = 0
        for _ in range(SSE_CLIENTS):
            client = served.events.subscribe()
            served.events.publish([{"type": "track", "frame": frame} for frame in range(QUEUE + 2)])
            lost += client.lost
            served.events.unsubscribe(client)
        return lost

    lost = asyncio.run(clients_come_and_go())
    assert lost == SSE_CLIENTS * 2
    assert _samples(served.metrics.exposition(), "samurai_events_dropped") == [((), lost)]


def test_the_sse_clients_gauge_counts_connected_clients(served):
    def gauge() -> float:
        return dict(_samples(served.send("GET", "/metrics")[1], "samurai_sse_clients"))[()]

    clients = [socket.create_connection(("127.0.0.1", served.port), timeout=HTTP_TIMEOUT_S) for _ in range(3)]
    for client in clients:
        client.sendall(b"GET /api/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
    wait_for(lambda: gauge() == 3, GAUGE_WAIT_S, "three SSE clients")
    for client in clients:
        client.close()
    wait_for(lambda: gauge() == 0, GAUGE_WAIT_S, "no SSE client")


def test_the_command_line_wires_allowed_hosts_and_the_clients_gauge(tmp_path):
    """`app/run.py --serve --allowed-host NAME`, built as the run builds it (no models needed)."""
    from contextlib import ExitStack

    from PIL import Image

    from app import run
    from app.serve.start import start_server

    Image.new("RGB", (WIDTH, HEIGHT)).save(tmp_path / "0.png")
    with pytest.raises(SystemExit) as info:
        run.parse_args(["--serve", "8080", "--allowed-host", "http://board.example:8080"])
    assert info.value.code == 2
    port = free_port()
    args = run.parse_args(["--video", str(tmp_path), "--serve", f"127.0.0.1:{port}",
                           "--allowed-host", ALLOWED, "--allowed-host", "Proxy.Example"])
    assert args.allowed_host == [ALLOWED, "proxy.example"]
    with ExitStack() as stack:
        start_server(args, TrackController((WIDTH, HEIGHT)), FolderSource(tmp_path), stack)
        def scrape(host: str) -> tuple[int, bytes]:
            connection = HTTPConnection("127.0.0.1", port, timeout=HTTP_TIMEOUT_S)
            try:
                connection.request("GET", "/metrics", headers={"Host": host})
                response = connection.getresponse()
                return response.status, response.read()
            finally:
                connection.close()

        assert scrape(ALLOWED)[0] == scrape("proxy.example")[0] == 200 and scrape(FOREIGN)[0] == 403
        client = socket.create_connection(("127.0.0.1", port), timeout=HTTP_TIMEOUT_S)
        client.sendall(f"GET /api/events HTTP/1.1\r\nHost: {ALLOWED}\r\n\r\n".encode())
        try:
            wait_for(lambda: _samples(scrape(ALLOWED)[1], "samurai_sse_clients") == [((), 1.0)], GAUGE_WAIT_S,
                     "the SSE client in the gauge")
        finally:
            client.close()


# A page of another origin (another name and port) that posts to the run as a web page the user visits can: fetch in
# no-cors mode (text/plain, a form encoding, a PNG blob) and a text/plain form whose field makes the body JSON,
# each to /api/stop and /api/prompts. `window.answered` counts the requests the run answered (an opaque response or
# the form's frame loading): a request the browser itself refused would leave the test nothing to show.
ATTACK_PAGE = """<!doctype html><html><body>
<iframe name="sink0"></iframe><iframe name="sink1"></iframe>
<script>
const target = "http://127.0.0.1:{port}";
const prompt = '{{"id": 1, "box": [20, 100, 40, 40]}}';
window.answered = 0; window.failed = [];
const paths = ["/api/stop", "/api/prompts"];
const bodies = [[prompt, "text/plain"], [prompt, "application/x-www-form-urlencoded"],
                [new Blob([new Uint8Array([137, 80, 78, 71])], {{type: "image/png"}}), null]];
for (const path of paths) {{
  for (const [body, type] of bodies) {{
    fetch(target + path, {{method: "POST", mode: "no-cors", body, headers: type ? {{"Content-Type": type}} : {{}}}})
      .then(() => window.answered++, error => window.failed.push(path + ": " + error));
  }}
}}
paths.forEach((path, i) => {{
  const form = document.createElement("form");
  Object.assign(form, {{method: "POST", action: target + path, enctype: "text/plain", target: "sink" + i}});
  const field = document.createElement("input");  // sent as NAME=VALUE: {{"id": 1, ..., "x": "="}}
  Object.assign(field, {{name: prompt.slice(0, -1) + ', "x": "', value: '"}}'}});
  form.appendChild(field);
  document.body.appendChild(form);
  document.getElementsByName("sink" + i)[0].onload = () => window.answered++;
  form.submit();
}});
</script></body></html>"""
ATTACKS = 2 * 3 + 2  # per path: three fetches and a form
BROWSER_WAIT_S = 60.0


def test_a_page_of_another_origin_in_chromium_changes_nothing(demo_models, leave_clip, browser, tmp_path):
    """A real browser on a foreign page: every forged POST reaches the run, which is refused, still running,
    with no object and no prompt record; the run then stops as a program asks (JSON, no Origin)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from tests.live_helpers import http, start_run, stop_process, status

    port = free_port()
    page = ATTACK_PAGE.format(port=port).encode()

    class Attacker(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args):
            pass

    attacker = ThreadingHTTPServer(("127.0.0.1", 0), Attacker)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    events, log = tmp_path / "events.jsonl", tmp_path / "run.log"
    base = f"http://127.0.0.1:{port}"
    run = start_run(["--video", str(leave_clip[0]), "--model-dir", str(demo_models), "--backend", "onnx",
                     "--no-display", "--serve", str(port), "--events", str(events)], log)  # no box: it waits
    try:
        wait_for(lambda: "open http" in log.read_text(), BROWSER_WAIT_S, "the server")
        browser.get(f"http://localhost:{attacker.server_address[1]}/")
        wait_for(lambda: browser.execute_script("return window.answered + window.failed.length") >= ATTACKS,
                 BROWSER_WAIT_S, "the forged requests answered")
        assert browser.execute_script("return [window.answered, window.failed]") == [ATTACKS, []]
        now = status(base)
        assert run.poll() is None and now["state"] == "waiting" and not now["objects"], now
        text = log.read_text()
        assert "refused a request (403)" in text, text
        assert not [words for words in ("stop requested", "started tracking", "prompt applied") if words in text], text
        assert http("POST", f"{base}/api/stop", {})[0] == 200
        assert run.wait(BROWSER_WAIT_S) == 0, log.read_text()[-3000:]
    finally:
        stop_process(run)
        attacker.shutdown()
    assert not [line for line in events.read_text().splitlines() if '"prompt"' in line]
