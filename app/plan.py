"""What a run of `app/run.py` chose, checked before anything opens: the models, the config, the first boxes, the
window; and what `summary.json` records of it.

Every choice that can be wrong is made here, before the source, the page or a
model opens, so that bad input is one `ERROR` line and exit 2 with nothing
half-open behind it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from acl_models.bundle import BundleChoice, choose_bundle
from app.live.prompt_file import PromptLine, read_prompt_file
from app.live.summary import WhatRan
from app.live.window import has_display, window_works
from app.media.credentials import mask_credentials
from app.media.outputs import MAX_OBJECT_ID
from app.media.prompt import PromptError, command_line_boxes
from app.publish.mqtt import BrokerAddress
from app.samurai.boxes import Box
from app.samurai.config import TrackerConfig, load_config


@dataclass
class Plan:
    """What the command line chose, checked before the source opens: the models (their runners open once the
    source says whether frames overlap), the config, the first boxes, whether a window opens."""

    models: BundleChoice
    config: TrackerConfig
    boxes: list[tuple[str, Box]]
    prompts: list[PromptLine]  # --prompts, read and checked; scheduled once the source gives the frame size
    display: bool
    source_name: str  # the source as the log and summary.json name it: no password
    started: str


def first_boxes(args: argparse.Namespace) -> list[tuple[str, Box]]:
    """(where the box came from, box) per object, in object-id order; empty when the boxes are to be drawn."""
    return command_line_boxes(args.bbox, args.bbox_file, args.boxes_file, MAX_OBJECT_ID)


def plan_run(args: argparse.Namespace, broker: BrokerAddress | None, started: str) -> Plan:
    """Every choice that can be wrong before anything opens; no box and nothing to give one is bad input."""
    models = choose_bundle(args.model_dir, args.backend, args.onnx_variant, args.precision)
    config = load_config(args.config, models.manifest.model_size, args.mode)
    boxes = first_boxes(args)
    prompts = read_prompt_file(args.prompts) if args.prompts else []
    display = args.serve is None and not args.no_display and has_display() and window_works()
    if not boxes and not prompts and args.serve is None and not display and broker is None:
        raise PromptError("no box given and no display to draw one; pass --bbox x,y,w,h, --bbox-file FILE, "
                          "--prompts FILE, --serve PORT or --publish URL (a box then comes on PREFIX/cmd)")
    return Plan(models, config, boxes, prompts, display, mask_credentials(args.video), started)


def what_ran(args: argparse.Namespace, plan: Plan) -> WhatRan:
    """The models and settings that summary.json records."""
    manifest = plan.models.manifest
    return WhatRan(plan.models.backend, args.onnx_variant, args.precision, plan.config.mode, manifest.model_size,
                   manifest.image_size, manifest.checkpoint_sha256, pipelined=not args.sequential)
