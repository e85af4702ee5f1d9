"""The command line of `app/run.py`: every option, its default and its help, read into a Namespace.

The checks that need more than argparse's types live in `app/options.py` and run
after parsing, before any model loads. A new option of `app/run.py` is one
`add_argument` call in the group of `build_parser` it belongs to, one row in
`tests/test_options.py`'s table and, when its value can be wrong, one check in
`app/options.py`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from acl_models.openvino_runner import EXPERIMENTAL_PRECISIONS, PRECISIONS
from acl_models.select import BACKENDS, DEFAULT_PRECISION
from app.media.credentials import URL_VARIABLES, secrets_on_command_line, url_from_environment
from app.options import OptionParser, frame_count, seconds
from app.serve.address import allowed_host_name


def _source_and_boxes(parser: argparse.ArgumentParser) -> None:
    """What to track: the source and the objects' first boxes."""
    parser.add_argument(
        "--video",
        help="video file, folder of JPEG/PNG frames, camera (cam0, /dev/video0) or stream URL (rtsp://, http://); "
        f"default ${URL_VARIABLES['--video']}, which keeps a password off the process list",
    )
    parser.add_argument("--bbox", action="append", help="first-frame box x,y,w,h in pixels; repeat for several objects")
    parser.add_argument("--bbox-file", type=Path, help="file whose first line is x,y,w,h (LaSOT style)")
    parser.add_argument("--boxes-file", type=Path, help="one x,y,w,h line per object (objects 1..N)")
    parser.add_argument(
        "--prompts", type=Path, metavar="FILE.jsonl",
        help='prompts to apply while tracking a file or folder, one JSON command per line ({"frame": K, "id": N, '
        '"box": [x, y, w, h]}, points and labels, a mask PNG, "remove": true; docs/usage.md), each applied once '
        "frame K is tracked: replays an interactive session exactly",
    )


def _models(parser: argparse.ArgumentParser) -> None:
    """The models, their backend and precision, and the tracker's config."""
    parser.add_argument("--model-dir", type=Path, default=Path("om_model"))
    parser.add_argument("--config", type=Path, help="tracker YAML (default configs/samurai.yaml)")
    parser.add_argument("--mode", choices=["samurai", "sam2"], help="override the config's mode")
    parser.add_argument(
        "--backend", choices=list(BACKENDS), default="auto",
        help="auto: the NPU when pyACL and the .om files are there, else OpenVINO when installed, else ONNX Runtime",
    )
    parser.add_argument(
        "--precision", choices=[p for p in PRECISIONS if p not in EXPERIMENTAL_PRECISIONS], default=DEFAULT_PRECISION,
        help="OpenVINO's compute precision; bf16 keeps every decision on the test clips and is the fast CPU choice "
        "where the CPU has it (an error where it does not)",
    )
    parser.add_argument(
        "--onnx-variant", choices=["fp32", "fp16", "int8"], default="fp32",
        help="ONNX Runtime graphs: the fp32 export or, as an experiment, its --fp16/--int8 variant "
        "(both change some decisions)",
    )


def _outputs(parser: argparse.ArgumentParser) -> None:
    """The result files and the window."""
    parser.add_argument("--output", type=Path, default=Path("out"))
    parser.add_argument("--save-video", action="store_true", help="write OUTPUT/track.mp4 with the mask and box")
    parser.add_argument("--save-masks", action="store_true", help="write OUTPUT/masks/00000.png, ...")
    parser.add_argument("--no-display", action="store_true", help="do not open a window")
    parser.add_argument("--max-frames", type=frame_count, help="stop after this many frames")
    parser.add_argument(
        "--log-decisions", type=Path, metavar="FILE.jsonl",
        help="per frame and object: state, predicted IoUs, object score, chosen mask, Kalman box, memory frames",
    )


def _serving(parser: argparse.ArgumentParser) -> None:
    """The page and the result stream for other programs."""
    parser.add_argument(
        "--serve", metavar="[HOST:]PORT",
        help="web page to draw the box and watch the track (host 127.0.0.1 unless given; others need the token)",
    )
    parser.add_argument("--token", help="access token of the page on a non-loopback --serve (default: generated)")
    parser.add_argument("--token-file", type=Path, metavar="FILE",
                        help="read the token from FILE (a service: not on the command line, not in the log)")
    parser.add_argument("--allowed-host", action="append", default=[], type=allowed_host_name, metavar="NAME",
                        help="a name the page may be reached by besides its address and localhost (a DNS name, a "
                             "proxy's); repeatable. Requests with any other Host are refused (DNS rebinding)")
    parser.add_argument(
        "--publish", metavar="mqtt://[USER:PASS@]HOST[:PORT]/PREFIX",
        help="the result stream on an MQTT broker (mqtts:// for TLS); commands come in on PREFIX/cmd; "
        f"default ${URL_VARIABLES['--publish']}, which keeps a password off the process list",
    )
    parser.add_argument(
        "--events", metavar="FILE.jsonl",
        help="the result stream as JSON lines (docs/service.md), - for standard output (logs stay on stderr)",
    )


def _running(parser: argparse.ArgumentParser) -> None:
    """How the source is read and the loop runs."""
    parser.add_argument("--stream-timeout", type=seconds, default=10.0, metavar="S",
                        help="give up opening or reading a stream after S seconds")
    parser.add_argument("--reconnect-s", type=seconds, default=60.0, metavar="S",
                        help="keep reconnecting a stream that dropped for up to S seconds")
    parser.add_argument("--sequential", action="store_true",
                        help="read, track and write one after another (no worker threads), for comparison")
    parser.add_argument("--overlap", action=argparse.BooleanOptionalAction, default=False,
                        help="files and folders: encode the next frame while this frame's objects are tracked "
                             "(same results; the cores are split between the two, so measure it with "
                             "scripts/bench.py --overlap first: on 2 quiet cores it was slower); live sources never "
                             "overlap (it would add latency)")
    parser.add_argument("--verbose", action="store_true")


# A new option goes into the function of its kind; --help lists them in this order.
OPTION_GROUPS = (_source_and_boxes, _models, _outputs, _serving, _running)


def build_parser() -> OptionParser:
    parser = OptionParser(description="SAMURAI object tracking on ONNX Runtime or an Ascend NPU")
    for add_options in OPTION_GROUPS:
        add_options(parser)
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The options, with `--video` and `--publish` from the environment when not given; `args.exposed` names the
    secrets typed on the command line, which the run warns about once its log is set up."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Secrets given on the command line are warned about once the log is set up (main).
    args.exposed = secrets_on_command_line({"--video": args.video, "--publish": args.publish, "--token": args.token})
    args.video = url_from_environment("--video", args.video, os.environ)
    args.publish = url_from_environment("--publish", args.publish, os.environ)
    if args.video is None:
        parser.error(f"the following arguments are required: --video (or ${URL_VARIABLES['--video']})")
    return args
