"""ATC command lines for the exported sub-models, derived from the graphs, never typed by hand.

    python -m convert.atc_args --model-dir om_model --soc-version Ascend310B4 [--precision MODE] [--aipp]
    python -m convert.atc_args --model-dir om_model --audit

Reads `manifest.json` and every ONNX graph it names, refuses to go on when the
two disagree (a stale manifest would give the tracker shapes the .om does not
have) or when a graph uses an op ATC does not parse (convert/op_audit.py), and
prints one `atc` command per sub-model. A hand-typed ATC command in a public
port names the same input twice; here input names, static dims, dynamic axes
(`-1`), gears, output nodes and the nodes kept in float32 all come from the graph.

Compiles: every `--dynamic_dims` gear is compiled as its own static graph, so a
conversion makes one compile per static model plus one per gear. Memory
attention is exported at one static shape (validity inputs mask absent memory
frames and pointers), so only the mask decoder has gears: one padding point
while tracking, a box as two corners on the prompt frame. Those prompts give
2 and 3 sparse tokens that attend to each other inside the official decoder,
so padding one into the other would change its results; the two gears of that
small graph cost one extra compile. Four models, five compiles.

`convert/atc_all.sh` drives this module (`--plan`, `--record`); see docs/ascend.md.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from loguru import logger

from convert import op_audit
from convert.precision import KEEP_SENSITIVE_FP32, sensitive_nodes

MANIFEST = "manifest.json"
OM_MANIFEST = "om_manifest.json"
AIPP_MODEL = "image_encoder"
AIPP_CONFIG = "aipp_image_encoder.cfg"

# `--soc_version` is "Ascend" + the chip name `npu-smi info` prints. Extend when
# a new chip ships; ATC itself lists what it knows in
# $ASCEND_OPP_PATH/../compiler/data/platform_config/*.ini.
SOC_VERSIONS = (
    "Ascend310",
    "Ascend310P1",
    "Ascend310P3",
    "Ascend310B1",
    "Ascend310B4",
    "Ascend910A",
    "Ascend910B",
    "Ascend910ProA",
    "Ascend910ProB",
    "Ascend910PremiumA",
    "Ascend910B1",
    "Ascend910B2",
    "Ascend910B3",
    "Ascend910B4",
)
# ATC's --precision_mode values, plus KEEP_SENSITIVE_FP32: force_fp16 with the sensitive
# nodes of convert/precision.py kept in float32 through a generated --keep_dtype file.
PRECISION_MODES = (
    "force_fp16", KEEP_SENSITIVE_FP32, "allow_mix_precision", "force_fp32", "allow_fp32_to_fp16", "must_keep_origin_dtype"
)
# The cheapest mode whose ONNX Runtime imitation keeps every tracking decision of
# float32 on the demo, random and stress checkpoints (scripts/precision_study.py;
# measured table in docs/ascend.md): force_fp16 flips decisions on the stress
# checkpoint, whose outlier channels overflow float16 LayerNorm sums.
DEFAULT_PRECISION = KEEP_SENSITIVE_FP32
KEEP_DTYPE_FILE = "keep_dtype_{model}.cfg"

ATC_ONNX_FRAMEWORK = 5  # ATC --framework code for ONNX (0 Caffe, 1 MindSpore, 3 TensorFlow)
ATC_LOG_LEVEL = "error"
ATC_MIN_GEARS = 2  # --dynamic_dims accepts (1, 100] gears
ATC_MAX_GEARS = 100
ATC_OPSETS = range(9, 19)  # ONNX opsets CANN 7.x / 8.x parse
DYNAMIC_DIM = -1  # how --input_shape marks an axis that --dynamic_dims fills in

# Box prompt on the first frame: two corners (labels 2, 3); tracking: one padding point.
TRACKING_POINTS = 1
BOX_POINTS = 2
# AIPP subtracts mean_chn (an integer 0..255) and min_chn (a float), then multiplies
# by var_reci_chn; the float means go into min_chn so nothing is rounded.
AIPP_PIXEL_MAX = 255.0
# Names and node names go between double quotes in a shell command line.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_./:\-]+$")


class AtcArgsError(ValueError):
    """A manifest, graph or setting problem; the message is one line naming the value and the fix."""


@dataclass(frozen=True)
class Tensor:
    """One graph input or output: static dims as ints, dynamic axes by name."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str


@dataclass(frozen=True)
class Graph:
    """What ATC needs from one ONNX file."""

    name: str
    path: Path
    opset: int
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    out_nodes: tuple[str, ...]  # "node_name:index" per graph output, in output order
    keep_fp32: tuple[str, ...] = ()  # nodes the KEEP_SENSITIVE_FP32 mode keeps in float32


@dataclass(frozen=True)
class Settings:
    """How to build: for which chip, in which precision, whether the encoder gets AIPP."""

    soc_version: str
    precision_mode: str = DEFAULT_PRECISION
    aipp: bool = False

    def __post_init__(self) -> None:
        if self.soc_version not in SOC_VERSIONS:
            raise AtcArgsError(
                f"unknown --soc-version {self.soc_version!r}; use one of {', '.join(SOC_VERSIONS)} "
                "(\"Ascend\" + the chip name `npu-smi info` prints)"
            )
        if self.precision_mode not in PRECISION_MODES:
            raise AtcArgsError(f"unknown --precision {self.precision_mode!r}; use one of {', '.join(PRECISION_MODES)}")

    def uses_aipp(self, model: str) -> bool:
        return self.aipp and model == AIPP_MODEL

    def record(self, model: str) -> dict:
        """What om_manifest.json keeps per model; equal records mean the .om needs no rebuild."""
        return {"soc_version": self.soc_version, "precision_mode": self.precision_mode, "aipp": self.uses_aipp(model)}


@dataclass(frozen=True)
class AtcJob:
    """One ATC conversion: the argv to run and what it produces."""

    model: str
    argv: tuple[str, ...]
    onnx_path: Path
    om_path: Path

    def command_line(self) -> str:
        """The argv as one shell line, `--input_shape="..."` quoted the way ATC's docs show it."""
        parts = []
        for arg in self.argv:
            key, sep, value = arg.partition("=")
            if sep and key in ("--input_shape", "--dynamic_dims", "--out_nodes"):
                parts.append(f'{key}="{value}"')
            elif sep:
                parts.append(f"{key}={shlex.quote(value)}")
            else:
                parts.append(shlex.quote(arg))
        return " ".join(parts)


# -- gears ---------------------------------------------------------------------


def _mask_decoder_gears(hyper: dict) -> list[dict[str, int]]:
    """One gear per point count a frame may get: tracking's padding point (and one click) up to the export's
    `max_prompt_points`; an export from before prompts has the box's two."""
    most = int(hyper.get("max_prompt_points", BOX_POINTS))
    return [{"num_points": n} for n in range(TRACKING_POINTS, most + 1)]


# Per sub-model: every value combination of its dynamic axes the tracker can ask for.
GEAR_RULES: dict[str, Callable[[dict], list[dict[str, int]]]] = {
    "mask_decoder": _mask_decoder_gears,
}


def dynamic_axes(graph: Graph) -> list[str]:
    """Dynamic axis names in order of appearance in --input_shape (one entry per -1)."""
    return [dim for tensor in graph.inputs for dim in tensor.shape if isinstance(dim, str)]


def gears_for(graph: Graph, hyper: dict) -> list[tuple[int, ...]]:
    """--dynamic_dims rows for `graph`: one value per -1, in --input_shape order; [] for a static graph."""
    axes = dynamic_axes(graph)
    rule = GEAR_RULES.get(graph.name)
    if rule is None:
        if axes:
            raise AtcArgsError(
                f"{graph.name}: dynamic axes {sorted(set(axes))} but no gear rule; "
                "add one to GEAR_RULES in convert/atc_args.py or re-export with static shapes"
            )
        return []
    gears = rule(hyper)
    expected = set(gears[0])
    if set(axes) != expected:
        raise AtcArgsError(
            f"{graph.name}: graph has dynamic axes {sorted(set(axes))} but the tracker varies {sorted(expected)}; "
            "re-export with convert/export_onnx.py"
        )
    if not ATC_MIN_GEARS <= len(gears) <= ATC_MAX_GEARS:
        raise AtcArgsError(f"{graph.name}: {len(gears)} gears is outside ATC's {ATC_MIN_GEARS}..{ATC_MAX_GEARS}")
    return [tuple(gear[axis] for axis in axes) for gear in gears]


# -- reading and checking ----------------------------------------------------------


# onnx is imported where graphs are read: `--record` (called after every
# conversion) and importing this module need no onnx.


def _dtype_name(elem_type: int) -> str:
    import onnx

    return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name


def _tensor(value) -> Tensor:
    dims = value.type.tensor_type.shape.dim
    shape = tuple(d.dim_param if d.dim_param else d.dim_value for d in dims)
    return Tensor(value.name, shape, _dtype_name(value.type.tensor_type.elem_type))


def read_graph(name: str, path: Path) -> Graph:
    """Inputs, outputs and output nodes of an ONNX file (weights are not parsed into arrays)."""
    import onnx

    if not path.is_file():
        raise AtcArgsError(f"{name}: {path} not found; run `python convert/export_onnx.py --out {path.parent}`")
    model = onnx.load(str(path), load_external_data=False)
    graph = model.graph
    initializers = {t.name for t in graph.initializer}
    producers = {out: (node.name, index) for node in graph.node for index, out in enumerate(node.output)}
    out_nodes = []
    for output in graph.output:
        node, index = producers.get(output.name, ("", 0))
        if not node:
            raise AtcArgsError(
                f"{name}: output '{output.name}' has no named producing node in {path.name}; "
                "re-export with convert/export_onnx.py"
            )
        out_nodes.append(f"{node}:{index}")
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    inputs = tuple(_tensor(v) for v in graph.input if v.name not in initializers)
    keep_fp32 = tuple(sensitive_nodes(model))
    for text in [t.name for t in inputs] + out_nodes + list(keep_fp32):
        if not _SAFE_NAME.match(text):
            raise AtcArgsError(f"{name}: name {text!r} in {path.name} has characters ATC arguments cannot carry")
    try:
        op_audit.check(path)
    except op_audit.UnsupportedOpError as exc:
        raise AtcArgsError(f"{name}: {exc}") from exc
    return Graph(name, path, opset, inputs, tuple(_tensor(v) for v in graph.output), tuple(out_nodes), keep_fp32)


def _check_tensors(model: str, kind: str, listed: list[dict], actual: tuple[Tensor, ...], file: str) -> None:
    fix = "re-run convert/export_onnx.py so manifest.json and the graphs agree"
    names = [t["name"] for t in listed]
    if names != [t.name for t in actual]:
        raise AtcArgsError(
            f"{model}: {kind} names are {names} in {MANIFEST} but {[t.name for t in actual]} in {file}; {fix}"
        )
    for entry, tensor in zip(listed, actual):
        if entry["dtype"] != tensor.dtype:
            raise AtcArgsError(
                f"{model}: {kind} '{tensor.name}' dtype is {entry['dtype']} in {MANIFEST} "
                f"but {tensor.dtype} in {file}; {fix}"
            )
        if len(entry["shape"]) != len(tensor.shape):
            raise AtcArgsError(
                f"{model}: {kind} '{tensor.name}' has shape {entry['shape']} in {MANIFEST} "
                f"but {list(tensor.shape)} in {file}; {fix}"
            )
        for axis, (listed_dim, dim) in enumerate(zip(entry["shape"], tensor.shape)):
            # Output dims the exporter could not infer carry generated names on both
            # sides; only inputs (what ATC is told) must agree on every axis.
            both_static = isinstance(listed_dim, int) and isinstance(dim, int)
            if listed_dim != dim and (kind == "input" or both_static):
                raise AtcArgsError(
                    f"{model}: {kind} '{tensor.name}' dim {axis} is {listed_dim!r} in {MANIFEST} "
                    f"but {dim!r} in {file}; {fix}"
                )


def load_graphs(model_dir: Path) -> tuple[dict, list[Graph]]:
    """The manifest and every graph it lists, checked against each other."""
    path = model_dir / MANIFEST
    if not path.is_file():
        raise AtcArgsError(f"{path} not found; export first with `python convert/export_onnx.py --out {model_dir}`")
    manifest = json.loads(path.read_text())
    graphs = []
    for name, entry in manifest["models"].items():
        graph = read_graph(name, model_dir / entry["file"])
        if graph.opset != manifest["opset"]:
            raise AtcArgsError(
                f"{name}: opset is {manifest['opset']} in {MANIFEST} but {graph.opset} in {entry['file']}; re-export"
            )
        if graph.opset not in ATC_OPSETS:
            raise AtcArgsError(
                f"{name}: opset {graph.opset} is outside what CANN parses "
                f"({ATC_OPSETS.start}..{ATC_OPSETS.stop - 1}); re-export with that opset"
            )
        _check_tensors(name, "input", entry["inputs"], graph.inputs, entry["file"])
        _check_tensors(name, "output", entry["outputs"], graph.outputs, entry["file"])
        graphs.append(graph)
    return manifest, graphs


# -- AIPP ----------------------------------------------------------------------------


def aipp_config(manifest: dict) -> str:
    """Static AIPP: uint8 RGB HWC in, (x/255 - mean)/std NCHW float out, as the encoder expects."""
    size = manifest["image_size"]
    hyper = manifest["hyper"]
    lines = [
        "# Written by convert/atc_args.py from manifest.json: the encoder .om takes uint8 RGB HWC pixels.",
        "# out = (pixel - mean_chn - min_chn) * var_reci_chn = (pixel/255 - mean) / std",
        "aipp_op {",
        "    aipp_mode : static",
        "    related_input_rank : 0",
        "    input_format : RGB888_U8",
        f"    src_image_size_w : {size}",
        f"    src_image_size_h : {size}",
        "    csc_switch : false",
        "    rbuv_swap_switch : false",
    ]
    for channel, (mean, std) in enumerate(zip(hyper["image_mean"], hyper["image_std"])):
        lines += [
            f"    mean_chn_{channel} : 0",
            f"    min_chn_{channel} : {mean * AIPP_PIXEL_MAX!r}",
            f"    var_reci_chn_{channel} : {1.0 / (std * AIPP_PIXEL_MAX)!r}",
        ]
    return "\n".join(lines + ["}", ""])


# -- commands ------------------------------------------------------------------------


def keep_dtype_path(model_dir: Path, model: str) -> Path:
    return model_dir / KEEP_DTYPE_FILE.format(model=model)


def precision_args(graph: Graph, settings: Settings, model_dir: Path) -> list[str]:
    if settings.precision_mode != KEEP_SENSITIVE_FP32:
        return [f"--precision_mode={settings.precision_mode}"]
    args = ["--precision_mode=force_fp16"]
    if graph.keep_fp32:
        args.append(f"--keep_dtype={keep_dtype_path(model_dir, graph.name)}")
    return args


def build_job(graph: Graph, manifest: dict, settings: Settings, model_dir: Path) -> AtcJob:
    gears = gears_for(graph, manifest["hyper"])
    four_d = all(len(t.shape) == 4 for t in graph.inputs)
    input_format = "ND" if gears or not four_d else "NCHW"
    shape = ";".join(
        f"{t.name}:" + ",".join(str(DYNAMIC_DIM if isinstance(d, str) else d) for d in t.shape) for t in graph.inputs
    )
    argv = [
        "atc",
        f"--framework={ATC_ONNX_FRAMEWORK}",
        f"--model={graph.path}",
        f"--output={model_dir / graph.name}",
        f"--soc_version={settings.soc_version}",
        f"--input_format={input_format}",
        f"--input_shape={shape}",
    ]
    if gears:
        argv.append("--dynamic_dims=" + ";".join(",".join(map(str, gear)) for gear in gears))
    argv += [
        "--out_nodes=" + ";".join(graph.out_nodes),
        *precision_args(graph, settings, model_dir),
        f"--log={ATC_LOG_LEVEL}",
    ]
    if settings.uses_aipp(graph.name):
        argv.append(f"--insert_op_conf={model_dir / AIPP_CONFIG}")
    return AtcJob(graph.name, tuple(argv), graph.path, model_dir / f"{graph.name}.om")


def build_jobs(model_dir: Path, settings: Settings, write_files: bool = True) -> list[AtcJob]:
    """One job per sub-model; writes the AIPP config and --keep_dtype lists next to the models when they are used."""
    manifest, graphs = load_graphs(model_dir)
    if settings.aipp:
        image = next((g for g in graphs if g.name == AIPP_MODEL), None)
        if image is None or len(image.inputs) != 1:
            raise AtcArgsError(f"--aipp needs {AIPP_MODEL} with one image input in {MANIFEST}")
        if write_files:
            (model_dir / AIPP_CONFIG).write_text(aipp_config(manifest))
    if settings.precision_mode == KEEP_SENSITIVE_FP32 and write_files:
        for graph in graphs:
            if graph.keep_fp32:
                keep_dtype_path(model_dir, graph.name).write_text("\n".join(graph.keep_fp32) + "\n")
    return [build_job(graph, manifest, settings, model_dir) for graph in graphs]


# -- conversion records ------------------------------------------------------------


def _read_records(model_dir: Path) -> dict:
    path = model_dir / OM_MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {"format": 1, "models": {}}


def record_conversion(model_dir: Path, model: str, settings: Settings) -> None:
    """Note in om_manifest.json how `model`.om was built, so a later run knows whether it is stale."""
    records = _read_records(model_dir)
    records["models"][model] = {
        "file": f"{model}.om",
        **settings.record(model),
        "converted_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    (model_dir / OM_MANIFEST).write_text(json.dumps(records, indent=2))


def staleness(job: AtcJob, settings: Settings, records: dict) -> str | None:
    """Why `job` must run, or None when its .om is newer than the .onnx and built the same way."""
    if not job.om_path.is_file():
        return "no .om yet"
    if job.om_path.stat().st_mtime <= job.onnx_path.stat().st_mtime:
        return ".onnx is newer than .om"
    recorded = records["models"].get(job.model)
    if recorded is None:
        return f"not recorded in {OM_MANIFEST}"
    wanted = settings.record(job.model)
    if any(recorded.get(key) != value for key, value in wanted.items()):
        was = ", ".join(f"{key}={recorded.get(key)}" for key in wanted)
        return f"built with {was}"
    return None


# -- CLI -----------------------------------------------------------------------------


def audit_table(model_dir: Path) -> tuple[str, bool]:
    """Markdown table of every op type per graph and whether ATC parses it at the graph's opset; (table, all parsed)."""
    import onnx

    manifest = json.loads((model_dir / MANIFEST).read_text()) if (model_dir / MANIFEST).is_file() else None
    if manifest is None:
        raise AtcArgsError(f"{model_dir / MANIFEST} not found; export first with `python convert/export_onnx.py --out {model_dir}`")
    table = op_audit.supported_ops()
    lines = ["| model | op | opset | nodes | first node | ATC parses |", "|---|---|---|---|---|---|"]
    ok = True
    for name, entry in manifest["models"].items():
        path = model_dir / entry["file"]
        if not path.is_file():
            raise AtcArgsError(f"{name}: {path} not found; run `python convert/export_onnx.py --out {model_dir}`")
        for use in op_audit.audit(onnx.load(str(path), load_external_data=False), table):
            ok &= use.supported
            lines.append(
                f"| {name} | {use.domain}::{use.op_type} | {use.opset} | {use.count} | {use.first_node} | "
                f"{'yes' if use.supported else 'NO'} |"
            )
    return "\n".join(lines), ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--soc-version", help="Ascend + chip name from `npu-smi info` (not needed for --audit)")
    parser.add_argument("--precision", default=DEFAULT_PRECISION, help=f"one of {', '.join(PRECISION_MODES)}")
    parser.add_argument("--aipp", action="store_true", help="image encoder takes uint8 RGB HWC, normalised on the NPU")
    parser.add_argument("--dry-run", action="store_true", help="write nothing (no AIPP config, no --keep_dtype lists)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--plan", action="store_true", help="TSV: model, convert|skip, reason, command (for atc_all.sh)")
    mode.add_argument("--record", metavar="MODEL", help="note in om_manifest.json that MODEL.om was just built")
    mode.add_argument("--audit", action="store_true", help="table of the graphs' ops and whether ATC parses them")
    parser.add_argument("--force", action="store_true", help="with --plan: convert even up-to-date models")
    args = parser.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, format="atc_args: {message}", level="INFO")
    try:
        if args.audit:
            table, ok = audit_table(args.model_dir)
            print(table)
            if not ok:
                logger.error("some ops are not parsed by CANN's ATC (rows marked NO); see {}", op_audit.SUPPORTED_OPS_FILE.name)
            return 0 if ok else 2
        if not args.soc_version:
            raise AtcArgsError("--soc-version is required, e.g. --soc-version Ascend310B4 (\"Ascend\" + the chip `npu-smi info` shows)")
        settings = Settings(args.soc_version, args.precision, args.aipp)
        if args.record:
            record_conversion(args.model_dir, args.record, settings)
            return 0
        jobs = build_jobs(args.model_dir, settings, write_files=not args.dry_run)
    except AtcArgsError as exc:
        logger.error("{}", exc)
        return 2
    records = _read_records(args.model_dir)
    for job in jobs:
        if not args.plan:
            print(job.command_line())
            continue
        reason = "--force" if args.force else staleness(job, settings, records)
        action = "convert" if reason else "skip"
        print("\t".join([job.model, action, reason or "up to date", job.command_line()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
