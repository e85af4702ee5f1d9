"""Running as a service: the systemd unit's command line, --token-file, and the probes behind the token."""

from __future__ import annotations

import configparser

import pytest

from app import run
from tests.live_helpers import REPO, free_port, http, start_run, stop_process, wait_for

UNIT = REPO / "deploy" / "systemd" / "samurai@.service"
EXAMPLE_ENV = REPO / "deploy" / "systemd" / "door.env.example"
RUN_TIMEOUT_S = 120.0
TOKEN = "s3cret-T0ken"
EXIT_OK, EXIT_BAD_INPUT, EXIT_SOURCE_LOST, EXIT_OUTPUT_FAILED = 0, 2, 3, 4


def _unit() -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(UNIT)
    return unit


def test_the_unit_runs_a_command_line_the_cli_accepts(monkeypatch):
    service = _unit()["Service"]
    assert service["Restart"] == "on-failure" and service["KillSignal"] == "SIGTERM"
    # Bad input and an output that cannot be written (a full disk) are not retried; a lost stream (3) is.
    assert service["RestartPreventExitStatus"].split() == [str(EXIT_BAD_INPUT), str(EXIT_OUTPUT_FAILED)]
    env = dict(line.split("=", 1) for line in EXAMPLE_ENV.read_text().splitlines() if line and not line[0] == "#")
    for name, value in env.items():  # systemd hands the environment file's variables to the process
        monkeypatch.setenv(name, value)
    # systemd splits an unbraced $VAR into words and expands %i to the instance name.
    words = service["ExecStart"].replace("%i", "door").split()
    words = [part for word in words for part in (env[word[1:]].split() if word.startswith("$") else [word])]
    assert words[:2] == ["/opt/samurai-ascend/.venv/bin/python", "app/run.py"]
    args = run.parse_args(words[2:])
    assert args.token_file.name == "door.token" and args.publish.startswith("mqtt://") and args.no_display
    # The passwords reach the run through its environment, never its command line.
    assert args.video.startswith("rtsp://") and not args.exposed and "CHANGE_ME" not in " ".join(words)


@pytest.mark.parametrize(("content", "extra", "message"), [
    (None, [], "cannot read --token-file"),
    ("", [], "holds no token"),
    ("two words", [], "holds no token"),
    (TOKEN, ["--token", "x"], "one way"),
])
def test_bad_token_files_are_one_line(content, extra, message, leave_clip, demo_models, tmp_path):
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content)
    log = tmp_path / "run.log"
    process = start_run(["--video", str(leave_clip[0]), "--model-dir", str(demo_models), "--output",
                         str(tmp_path / "out"), "--serve", f"0.0.0.0:{free_port()}", "--token-file", str(token_file),
                         *extra], log)
    try:
        code = process.wait(RUN_TIMEOUT_S)
    finally:
        stop_process(process)
    text = log.read_text()
    errors = [line for line in text.splitlines() if line.startswith("ERROR")]
    assert code == EXIT_BAD_INPUT and len(errors) == 1 and message in errors[0] and "Traceback" not in text, text
    assert "loading the" not in text, "checked before any model loads"


def test_token_file_guards_the_page_metrics_and_health_and_stays_out_of_the_log(leave_clip, demo_models, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    web_port, log = free_port(), tmp_path / "run.log"
    base = f"http://127.0.0.1:{web_port}"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    process = start_run(["--video", str(leave_clip[0]), "--model-dir", str(demo_models), "--backend", "onnx",
                         "--output", str(tmp_path / "out"), "--no-display", "--serve", f"0.0.0.0:{web_port}",
                         "--token-file", str(token_file)], log)
    try:
        wait_for(lambda: http("GET", f"{base}/api/status", headers=bearer)[0] == 200, RUN_TIMEOUT_S, "the server",
                 process, log)
        for path in ("/metrics", "/healthz", "/api/events", "/api/status"):
            assert http("GET", f"{base}{path}")[0] == 401, path
        assert http("GET", f"{base}/metrics", headers=bearer)[0] == 200
        wait_for(lambda: http("GET", f"{base}/healthz", headers=bearer) == (200, b"ok\n"), RUN_TIMEOUT_S,
                 "healthy while waiting for a box", process, log)
        assert http("POST", f"{base}/api/stop", headers=bearer)[0] == 200
        assert process.wait(RUN_TIMEOUT_S) == EXIT_OK
    finally:
        stop_process(process)
    text = log.read_text()
    assert TOKEN not in text and "token=YOUR_TOKEN" in text, text


def test_a_stream_gone_past_reconnect_s_exits_3(demo_models, tmp_path):
    from tests.live_helpers import start_rtsp_server

    rtsp_port, log = free_port(), tmp_path / "run.log"
    server = start_rtsp_server(rtsp_port)
    process = start_run(["--video", f"rtsp://127.0.0.1:{rtsp_port}/scene", "--bbox", "0,95,320,50", "--model-dir",
                         str(demo_models), "--backend", "onnx", "--output", str(tmp_path / "out"), "--no-display",
                         "--stream-timeout", "2", "--reconnect-s", "2"], log)
    try:
        wait_for(lambda: (tmp_path / "out" / "track.txt").exists(), RUN_TIMEOUT_S, "tracking", process, log)
        stop_process(server)
        code = process.wait(RUN_TIMEOUT_S)
    finally:
        stop_process(process)
        stop_process(server)
    text = log.read_text()
    errors = [line for line in text.splitlines() if line.startswith("ERROR")]
    assert code == EXIT_SOURCE_LOST and len(errors) == 1 and "did not come back" in errors[0], text[-3000:]
    assert (tmp_path / "out" / "summary.json").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--publish", "http://broker/x"], "is not mqtt or mqtts"),
    (["--publish", "mqtt://broker/a/+/b"], "may hold no +, # or ?"),
    (["--publish", "mqtt://broker/a/#"], "may hold no +, # or ?"),
    (["--publish", "mqtt://u:pw@broker:99999/x"], "cannot be read"),
    (["--publish", "mqtt://broker"], "no topic prefix"),
    (["--events", "{file}/events.jsonl"], "cannot write --events"),
    (["--output", "{file}/out"], "lies under a file"),
    (["--output", "{file}"], "is a file, not a folder"),
    (["--log-decisions", "{file}/d.jsonl"], "is a file, not a folder"),
])
def test_bad_publishing_and_output_arguments_are_one_line_before_any_model_loads(extra, message, tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    # No models at all: the arguments are checked first.
    code = run.main(["--video", str(tmp_path), "--bbox", "1,1,5,5", "--model-dir", str(tmp_path / "no_models"),
                     "--output", str(tmp_path / "out"), *[word.format(file=a_file) for word in extra]])
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("ERROR")]
    assert code == EXIT_BAD_INPUT and len(errors) == 1 and message in errors[0] and "Traceback" not in err, err
    assert "pw" not in err
