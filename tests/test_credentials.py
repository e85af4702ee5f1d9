"""Secrets off the command line: URLs with passwords from the environment, one warning when they are on it,
and the token's checks (`--token ''` refused, a token file others can read warned about)."""

from __future__ import annotations

import json

import pytest

from app import run
from app.serve.address import warn_if_others_can_read
from tests.live_helpers import free_port, http, start_rtsp_server, start_run, stop_process, wait_for

PASSWORD = "s3cret-pw"
TOKEN = "s3cret-T0ken"
USER = "viewer"
# tests/rtsp_scene_server.py: a 40x40 square at y=100 in a 320x240 frame; a box over its whole row.
ROW_BOX = "0,95,320,50"
TRACKED_FRAMES = 3
RUN_TIMEOUT_S = 120.0
EXIT_OK, EXIT_BAD_INPUT = 0, 2


def _main(capsys, *args: str) -> tuple[int, str]:
    code = run.main(list(args))
    return code, capsys.readouterr().err


def _lines(err: str, level: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(level)]


def test_a_stream_password_in_the_environment_reaches_the_camera_and_nothing_else(demo_models, tmp_path,
                                                                                   monkeypatch):
    port, out, log = free_port(), tmp_path / "out", tmp_path / "run.log"
    server = start_rtsp_server(port, USER, PASSWORD)  # refuses a client without the password
    monkeypatch.setenv("SAMURAI_VIDEO", f"rtsp://{USER}:{PASSWORD}@127.0.0.1:{port}/scene")
    process = start_run(["--bbox", ROW_BOX, "--max-frames", str(TRACKED_FRAMES), "--model-dir", str(demo_models),
                         "--backend", "onnx", "--output", str(out), "--no-display"], log)
    try:
        code = process.wait(RUN_TIMEOUT_S)
    finally:
        stop_process(process)
        stop_process(server)
    text = log.read_text()
    assert code == EXIT_OK and len((out / "track.txt").read_text().splitlines()) == TRACKED_FRAMES, text[-3000:]
    assert PASSWORD not in text and not _lines(text, "WARNING"), text[-3000:]
    assert json.loads((out / "summary.json").read_text())["source"] == f"rtsp://{USER}:***@127.0.0.1:{port}/scene"


def test_secrets_on_the_command_line_get_one_warning_saying_how_to_keep_them_off(capsys, tmp_path):
    # No models: the run stops at the model folder, after the warning.
    code, err = _main(capsys, "--video", f"rtsp://{USER}:{PASSWORD}@127.0.0.1:1/scene", "--bbox", "1,1,5,5",
                      "--publish", f"mqtt://door:{PASSWORD}@127.0.0.1:1/boards/door", "--token", TOKEN,
                      "--model-dir", str(tmp_path / "no_models"), "--output", str(tmp_path / "out"))
    warnings = _lines(err, "WARNING")
    assert code == EXIT_BAD_INPUT and len(warnings) == 1, err
    assert all(advice in warnings[0] for advice in ("SAMURAI_VIDEO=", "SAMURAI_PUBLISH=", "--token-file")), warnings
    assert "/proc/PID/cmdline" in warnings[0]
    assert PASSWORD not in err and TOKEN not in err, err


def test_the_same_urls_from_the_environment_get_no_warning(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SAMURAI_VIDEO", f"rtsp://{USER}:{PASSWORD}@127.0.0.1:1/scene")
    monkeypatch.setenv("SAMURAI_PUBLISH", f"mqtt://door:{PASSWORD}@127.0.0.1:1/boards/door")
    code, err = _main(capsys, "--bbox", "1,1,5,5", "--model-dir", str(tmp_path / "no_models"),
                      "--output", str(tmp_path / "out"))
    assert code == EXIT_BAD_INPUT and "model" in _lines(err, "ERROR")[0] and not _lines(err, "WARNING"), err


@pytest.mark.parametrize(("environment", "given", "message"), [
    ({"SAMURAI_PUBLISH": f"http://door:{PASSWORD}@broker/x"}, [], "is not mqtt or mqtts"),
    # The command line wins over the environment.
    ({"SAMURAI_PUBLISH": "mqtt://broker/boards/door"}, ["--publish", "mqtt://broker/a/#"], "may hold no +, # or ?"),
])
def test_the_environment_gives_the_urls_the_command_line_leaves_out(environment, given, message, capsys, tmp_path,
                                                                     monkeypatch):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    code, err = _main(capsys, "--video", str(tmp_path), *given, "--bbox", "1,1,5,5",
                      "--model-dir", str(tmp_path / "no_models"), "--output", str(tmp_path / "out"))
    errors = _lines(err, "ERROR")
    assert code == EXIT_BAD_INPUT and len(errors) == 1 and message in errors[0], err
    assert PASSWORD not in err and not _lines(err, "WARNING"), "a URL without a password is no secret"


def test_a_video_on_the_command_line_wins_over_the_environment(monkeypatch):
    monkeypatch.setenv("SAMURAI_VIDEO", "rtsp://camera/a")
    assert run.parse_args(["--video", "rtsp://camera/b"]).video == "rtsp://camera/b"
    assert run.parse_args([]).video == "rtsp://camera/a"


def test_no_video_anywhere_is_a_usage_error_naming_the_variable(capsys, monkeypatch):
    monkeypatch.delenv("SAMURAI_VIDEO", raising=False)
    with pytest.raises(SystemExit) as stopped:
        run.main(["--bbox", "1,1,5,5"])
    assert stopped.value.code == EXIT_BAD_INPUT and "SAMURAI_VIDEO" in capsys.readouterr().err


@pytest.mark.parametrize("token", ["", "two words"])
def test_a_token_that_cannot_be_typed_back_is_refused(token, capsys, tmp_path):
    # A missing model folder would be the error if the token were not checked first.
    code, err = _main(capsys, "--video", str(tmp_path), "--serve", "0.0.0.0:8080", "--token", token,
                      "--model-dir", str(tmp_path / "no_models"), "--output", str(tmp_path / "out"))
    errors = _lines(err, "ERROR")
    assert code == EXIT_BAD_INPUT and len(errors) == 1 and "--token" in errors[0] and "Traceback" not in err, err


def test_a_token_file_others_can_read_gets_one_warning_in_a_run(leave_clip, demo_models, tmp_path):
    token_file, log, port = tmp_path / "door.token", tmp_path / "run.log", free_port()
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o644)
    process = start_run(["--video", str(leave_clip[0]), "--model-dir", str(demo_models), "--backend", "onnx",
                         "--output", str(tmp_path / "out"), "--no-display", "--serve", f"127.0.0.1:{port}",
                         "--token-file", str(token_file)], log)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    try:
        wait_for(lambda: http("GET", f"http://127.0.0.1:{port}/api/status", headers=bearer)[0] == 200,
                 RUN_TIMEOUT_S, "the server", process, log)
        assert http("POST", f"http://127.0.0.1:{port}/api/stop", headers=bearer)[0] == 200
        assert process.wait(RUN_TIMEOUT_S) == EXIT_OK
    finally:
        stop_process(process)
    text = log.read_text()
    warnings = [line for line in _lines(text, "WARNING") if "--token-file" in line]
    assert len(warnings) == 1 and f"chmod 600 {token_file}" in warnings[0] and TOKEN not in text, text


@pytest.mark.parametrize(("mode", "warned"), [(0o600, False), (0o400, False), (0o640, True), (0o604, True)],
                         ids=["600", "400", "640", "604"])
def test_a_token_file_others_can_read_is_warned_about(mode, warned, tmp_path, warnings):
    path = tmp_path / "door.token"
    path.write_text(TOKEN + "\n")
    path.chmod(mode)
    warn_if_others_can_read(path)
    assert len(warnings) == warned and TOKEN not in "".join(warnings), warnings
    if warned:
        assert f"chmod 600 {path}" in warnings[0] and f"mode {mode:o}" in warnings[0], warnings
