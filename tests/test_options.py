"""Every option of app/run.py refuses nonsense: one ERROR line naming the option, exit 2, no traceback, before any
model loads and before any output exists.

The table covers every option that `app/run.py --help` lists; an option added without an entry fails
`test_the_table_covers_every_option`. Adding one is one line in OPTION_CASES. Most cases run `run.main` in this
process (validation needs no models); `test_as_a_real_process` runs representative ones as `python app/run.py`.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from app import run
from app.options import MAX_WAIT_S, check_options

REPO = Path(__file__).resolve().parents[1]
BOX = "1,1,4,4"
STREAM = "rtsp://camera/stream"
MANY = 256  # one more object than an indexed mask (and the API's ids 1..255) can hold
DEEP = 100_000  # brackets: far past Python's recursion limit
HUGE_LINE_BYTES = 100 * 1024 * 1024
ROOT = os.geteuid() == 0
# The exported folder's manifest as acl_models/manifest.py reads it (format 4), without any model file:
# enough to pass the option checks, which open no model.
MANIFEST = {"format": 4, "model_size": "t", "image_size": 128, "constants": {}, "hyper": {"backbone_stride": 16},
            "checkpoint": {"sha256": "0" * 64},
            "models": {name: {} for name in ("image_encoder", "memory_attention", "memory_encoder", "mask_decoder")}}

# Option → the nonsense values it must refuse (the words to add to a valid command line; placeholders in braces are
# paths the `paths` fixture makes), or the reason it takes no value or accepts every value.
OPTION_CASES: dict[str, list[tuple[str, ...]] | str] = {
    "--help": "takes no value: prints the help and exits 0",
    "--video": [("--video", ""), ("--video", " "), ("--video", "{missing}"), ("--video", "cam-1"),
                ("--video", "{long}")],
    "--bbox": [("--bbox", ""), ("--bbox", "banana"), ("--bbox", "1,2,3"), ("--bbox", "nan,1,4,4"),
               ("--bbox", "1,1,inf,4"), ("--bbox", "1e999,1,4,4"), ("--bbox", "1,1,0,4"), ("--bbox=1,1,-4,4",),
               ("--bbox", BOX, "--bbox", "1,1,4"), tuple(word for _ in range(MANY) for word in ("--bbox", BOX)),
               ("--bbox", "1," * 40_000), ("--bbox", BOX, "--bbox-file", "{box_file}")],
    "--bbox-file": [("--bbox-file", "{missing}"), ("--bbox-file", "{folder}"), ("--bbox-file", "{binary}"),
                    ("--bbox-file", "{nul}"), ("--bbox-file", "{unreadable}"), ("--bbox-file", "{empty}"),
                    ("--bbox-file", "{nan_box}"), ("--bbox-file", "{zero_box}"), ("--bbox-file", "/dev/null"),
                    ("--bbox-file", "{long}"), ("--bbox-file", "{long_line}")],
    "--boxes-file": [("--boxes-file", "{missing}"), ("--boxes-file", "{folder}"), ("--boxes-file", "{binary}"),
                     ("--boxes-file", "{unreadable}"), ("--boxes-file", "{empty}"), ("--boxes-file", "{nan_box}"),
                     ("--boxes-file", "{many_boxes}"), ("--boxes-file", "{long}")],
    "--prompts": [("--prompts", "{missing}"), ("--prompts", "{folder}"), ("--prompts", "{binary}"),
                  ("--prompts", "{empty}"), ("--prompts", "{box_file}"), ("--prompts", "{long}"),
                  ("--prompts", "{no_frame_prompt}"), ("--prompts", "{points_no_labels}"),
                  ("--prompts", "{unreadable}"), ("--prompts", "{nul}"), ("--prompts", "{long_line}"),
                  ("--prompts", "{deep_prompt}"), ("--prompts", "{mask_folder_prompt}"),
                  ("--prompts", "{mask_binary_prompt}"), ("--prompts", "{mask_unreadable_prompt}"),
                  ("--video", STREAM, "--prompts", "{good_prompt}")],
    "--model-dir": [("--model-dir", "{missing}"), ("--model-dir", "{box_file}"), ("--model-dir", "{folder}"),
                    ("--model-dir", "{binary_manifest}"), ("--model-dir", "{list_manifest}"),
                    ("--model-dir", "{long}")],
    "--config": [("--config", "{missing}"), ("--config", "{folder}"), ("--config", "{binary}"),
                 ("--config", "{unreadable}"), ("--config", "{list_yaml}"), ("--config", "{banana_yaml}"),
                 ("--config", "{long}")],
    "--mode": [("--mode", "banana"), ("--mode", "")],
    "--backend": [("--backend", "banana"), ("--backend", "")],
    "--precision": [("--precision", "int8"), ("--precision", "fp64")],
    "--onnx-variant": [("--onnx-variant", "int4"), ("--onnx-variant", "")],
    "--output": [("--output", "{box_file}"), ("--output", "{box_file}/out"), ("--output", "{read_only}"),
                 ("--output", "{read_only}/new/out"), ("--output", "{long}")],
    "--save-video": "takes no value (a switch)",
    "--save-masks": "takes no value (a switch)",
    "--no-display": "takes no value (a switch)",
    "--max-frames": [("--max-frames", "-1"), ("--max-frames", "0"), ("--max-frames", "nan"), ("--max-frames", "inf"),
                     ("--max-frames", "1.5"), ("--max-frames", "banana"), ("--max-frames", "")],
    "--log-decisions": [("--log-decisions", "{folder}"), ("--log-decisions", "{box_file}/d.jsonl"),
                        ("--log-decisions", "{read_only}/d.jsonl"), ("--log-decisions", "{read_only_file}"),
                        ("--log-decisions", "{long}/d.jsonl")],
    "--serve": [("--serve", "0"), ("--serve", "-1"), ("--serve", "65536"), ("--serve", "99999999999999999999"),
                ("--serve", "banana"), ("--serve", "host:"), ("--serve", "")],
    "--token": [("--token", "secret"), ("--serve", "8080", "--token", ""), ("--serve", "8080", "--token", "a b")],
    "--token-file": [("--token-file", "{token_file}"), ("--serve", "8080", "--token-file", "{missing}"),
                     ("--serve", "8080", "--token-file", "{folder}"), ("--serve", "8080", "--token-file", "{binary}"),
                     ("--serve", "8080", "--token-file", "{unreadable}"),
                     ("--serve", "8080", "--token-file", "{empty}"),
                     ("--serve", "8080", "--token-file", "{token_file}", "--token", "x"),
                     ("--serve", "8080", "--token-file", "{long}")],
    "--allowed-host": [("--allowed-host", "board.example"), ("--serve", "8080", "--allowed-host", "http://board"),
                       ("--serve", "8080", "--allowed-host", ""), ("--serve", "8080", "--allowed-host", "board:8080"),
                       ("--serve", "8080", "--allowed-host", "a/b"), ("--serve", "8080", "--allowed-host", "x" * 300)],
    "--publish": [("--publish", "http://broker/x"), ("--publish", "mqtt://"), ("--publish", "mqtt://broker"),
                  ("--publish", "mqtt://broker/a/+"), ("--publish", "mqtt://broker:99999/x"),
                  ("--publish", "mqtt://broker/" + "a" * 70_000), ("--publish", "mqtt://broker/" + "é" * 32_763)],
    "--events": [("--events", "{folder}"), ("--events", "{box_file}/e.jsonl"), ("--events", "{read_only}/e.jsonl"),
                 ("--events", "{read_only_file}"), ("--events", "{long}")],
    # On a stream, where the option means something; then a fine value on a folder, where it means nothing.
    "--stream-timeout": [("--video", STREAM, "--stream-timeout", value)
                         for value in ("0", "-1", "nan", "inf", f"{MAX_WAIT_S * 2:.0f}", "banana", "")]
                        + [("--stream-timeout", "5")],
    "--reconnect-s": [("--video", STREAM, "--reconnect-s", value)
                      for value in ("0", "-1", "nan", "-inf", "1e300", "banana", "")] + [("--reconnect-s", "5")],
    "--sequential": "takes no value (a switch)",
    "--overlap": "takes no value (a switch; a live source ignores it, as documented)",
    "--no-overlap": "takes no value (a switch)",
    "--verbose": "takes no value (a switch)",
}
BOX_OPTIONS = {"--bbox", "--bbox-file", "--boxes-file"}
SWITCHES = [option for option, cases in OPTION_CASES.items() if isinstance(cases, str) and option != "--help"]


@pytest.fixture(scope="module")
def help_options() -> list[str]:
    """The long options of `python app/run.py --help`, read from its text as a user reads it."""
    done = subprocess.run([sys.executable, "app/run.py", "--help"], cwd=REPO, capture_output=True, text=True,
                          env=_env(), check=True)
    # An option's line starts with two spaces and the option (after `-h, ` for help); wrapped text is indented more.
    found = re.findall(r"(?m)^  (?:-\w, )?(--[\w-]+)(?:[^,\n]*, (--[\w-]+))?", done.stdout)
    return [name for pair in found for name in pair if name]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def test_the_table_covers_every_option(help_options):
    assert len(help_options) > 20, help_options  # the help was read, not an empty list
    missing = [option for option in help_options if option not in OPTION_CASES]
    assert not missing, (f"app/run.py --help lists {missing} without an entry in OPTION_CASES of tests/test_options.py:"
                         " add one line with its nonsense values (or the reason it takes none)")
    gone = [option for option in OPTION_CASES if option not in help_options]
    assert not gone, f"OPTION_CASES lists {gone}, which app/run.py no longer has; remove them"


@pytest.fixture
def read_only(tmp_path) -> Iterator[Path]:
    """A folder nobody can write into, holding one file: a read-only tmpfs as root (chmod stops no root), else
    chmod."""
    folder = tmp_path / "ro"
    folder.mkdir()
    if not ROOT:
        (folder / "existing.jsonl").write_text("")
        (folder / "existing.jsonl").chmod(0o444)
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True,
                           text=True)
    if mount.returncode != 0:
        pytest.skip(f"root, but no tmpfs can be mounted here ({mount.stderr.strip()}); CI mounts one")
    try:
        (folder / "existing.jsonl").write_text("")
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


@pytest.fixture
def paths(tmp_path, read_only) -> dict[str, str]:
    made = {"missing": tmp_path / "missing", "folder": tmp_path / "a_folder", "read_only": read_only,
            "read_only_file": read_only / "existing.jsonl", "long": tmp_path / ("x" * 300)}  # names stop at 255
    made["folder"].mkdir()
    if ROOT:
        # Root reads every file whatever its mode; reading this one fails (EIO) for any user.
        made["unreadable"] = Path("/proc/self/mem")
    else:
        made["unreadable"] = tmp_path / "unreadable.txt"
        made["unreadable"].write_text(BOX)
        made["unreadable"].chmod(0)
    texts = {"box_file": BOX, "empty": "\n \n", "nan_box": "nan,1,4,4\n", "zero_box": "1,1,0,4\n",
             "many_boxes": f"{BOX}\n" * MANY, "token_file": "a-token\n", "list_yaml": "- 1\n- 2\n",
             "long_line": "1," * 40_000 + "\n", "no_frame_prompt": '{"id": 1, "box": [1, 1, 4, 4]}\n',
             "points_no_labels": '{"frame": 0, "id": 1, "points": [[1, 1]]}\n',
             "good_prompt": '{"frame": 0, "id": 1, "box": [1, 1, 4, 4]}\n',
             "deep_prompt": '{"frame": 0, "id": 1, "box": ' + "[" * DEEP + "]" * DEEP + "}\n",
             # A mask is named relative to the prompt file (all of these lie in tmp_path).
             "mask_folder_prompt": '{"frame": 0, "id": 1, "mask": "a_folder"}\n',
             "mask_binary_prompt": '{"frame": 0, "id": 1, "mask": "binary.png"}\n',
             "mask_unreadable_prompt": json.dumps({"frame": 0, "id": 1, "mask": str(made["unreadable"])}) + "\n",
             "banana_yaml": "samurai: {kf_score_weight: banana}\n"}
    for name, text in texts.items():
        made[name] = tmp_path / f"{name}.txt"
        made[name].write_text(text)
    made["binary"] = tmp_path / "binary.png"
    made["binary"].write_bytes(bytes(range(256)) * 4)  # 0x80..0xff alone are no UTF-8
    made["nul"] = tmp_path / "nul.txt"
    made["nul"].write_text("\0" * 5000 + "\n")
    for name, content in (("binary_manifest", b"\xff\xfe\x00{"), ("list_manifest", b"[1, 2]")):
        made[name] = tmp_path / name
        made[name].mkdir()
        (made[name] / "manifest.json").write_bytes(content)
    return {name: str(path) for name, path in made.items()}


@pytest.fixture
def base(tmp_path) -> list[str]:
    """A command line every check accepts: a frame folder, a box and a model folder that has only its manifest."""
    frames, models = tmp_path / "frames", tmp_path / "models"
    frames.mkdir()
    models.mkdir()
    (models / "manifest.json").write_text(json.dumps(MANIFEST))
    return ["--video", str(frames), "--bbox", BOX, "--model-dir", str(models), "--output", str(tmp_path / "out"),
            "--no-display"]


def _command(base: list[str], case: tuple[str, ...], paths: dict[str, str]) -> list[str]:
    """`base` with the case's options in place of the same ones (one box option replaces another)."""
    words = [word.format(**paths) if "{" in word else word for word in case]
    named = {word.split("=", 1)[0] for word in words if word.startswith("--")}
    replaced = named | (BOX_OPTIONS if named & BOX_OPTIONS else set())
    kept, i = [], 0
    while i < len(base):
        group = base[i:i + 2] if i + 1 < len(base) and not base[i + 1].startswith("--") else base[i:i + 1]
        if group[0] not in replaced:
            kept += group
        i += len(group)
    return kept + words


def _main(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = run.main(argv)
    except SystemExit as exc:  # argparse's own refusals
        code = exc.code
    return code, capsys.readouterr().err


def _assert_refused(code: int, err: str, option: str) -> None:
    errors = [line for line in err.splitlines() if line.startswith("ERROR")]
    assert code == run.EXIT_BAD_INPUT, err[-2000:]
    assert "Traceback" not in err and len(errors) == 1, err[-2000:]
    assert option in errors[0], errors[0]
    assert len(errors[0]) < 600, "the line quotes too much of the value"


def test_the_base_command_line_passes_every_check(base, paths):
    check_options(run.parse_args(base), base)
    assert not Path(base[base.index("--output") + 1]).exists()


VALUE_CASES = [(option, case) for option, cases in OPTION_CASES.items() if not isinstance(cases, str)
               for case in cases]


@pytest.mark.parametrize(("option", "case"), VALUE_CASES, ids=[f"{o}-{i}" for i, (o, _) in enumerate(VALUE_CASES)])
def test_nonsense_is_refused_before_anything_loads(option, case, base, paths, capsys):
    out = Path(base[base.index("--output") + 1])
    code, err = _main(_command(base, case, paths), capsys)
    _assert_refused(code, err, option)
    assert not out.exists(), "an output folder was created for a run that cannot start"


@pytest.mark.parametrize("option", SWITCHES)
def test_a_switch_given_a_value_is_refused(option, base, paths, capsys):
    code, err = _main([*base, f"{option}=yes"], capsys)
    _assert_refused(code, err, option)


def test_the_stream_settings_pass_for_a_stream(base, paths):
    """The same values that a folder refuses are a stream's settings (the check looks at the source, not the
    number), and --stream-timeout with --serve sets when /healthz calls the run stuck."""
    stream = _command(base, ("--video", STREAM, "--stream-timeout", "5", "--reconnect-s", "5"), paths)
    check_options(run.parse_args(stream), stream)
    serving = _command(base, ("--serve", "8080", "--stream-timeout", "5"), paths)
    check_options(run.parse_args(serving), serving)


REAL_PROCESS_CASES = [("--bbox-file", ("--bbox-file", "{binary}")), ("--config", ("--config", "{list_yaml}")),
                      ("--log-decisions", ("--log-decisions", "{read_only}/d.jsonl")),
                      ("--max-frames", ("--max-frames", "-1"))]


def test_as_a_real_process(base, paths):
    """What systemd runs: `python app/run.py ...` exits 2 with one line, for a checked value and an argparse one."""
    for option, case in REAL_PROCESS_CASES:
        done = subprocess.run([sys.executable, "app/run.py", *_command(base, case, paths)], cwd=REPO, env=_env(),
                              capture_output=True, text=True, timeout=60)
        _assert_refused(done.returncode, done.stderr, option)


def test_a_prompt_file_with_a_100_mb_line_is_refused(base, paths, tmp_path, capsys):
    """A line as long as a file (a mask pasted as base64 by mistake, a runaway writer): one short line, exit 2."""
    huge = tmp_path / "huge.jsonl"
    with huge.open("w") as file:
        file.write('{"frame": 0, "id": 1, "box": [1, 1, 4, 4], "mask": "')
        file.write("A" * HUGE_LINE_BYTES)
        file.write('"}\n')
    code, err = _main(_command(base, ("--prompts", str(huge)), paths), capsys)
    _assert_refused(code, err, "--prompts")


@pytest.mark.parametrize("option", ["--bbox-file", "--boxes-file"])
def test_binary_box_files_are_called_so(option, base, paths, capsys):
    for name in ("binary", "nul"):
        code, err = _main(_command(base, (option, paths[name]), paths), capsys)
        _assert_refused(code, err, option)
        assert "is not a text file" in err, err
