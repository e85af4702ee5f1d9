"""Each backend/precision pair against the official PyTorch predictor, one timed process per run, alternated.

The parent writes the clip as a JPEG folder and starts a child process per run (the command line it is given,
so that the child is set up as the front door sets up its own process); each child times its run and writes the
figures and decisions to an .npz the parent reads back.

The official predictor is the one of the export's family: SAM 2.1's runs in this environment; EdgeTAM's
top-level package is also `sam2`, so its child runs with the official EdgeTAM environment's Python
(scripts/setup_official_edgetam.sh) and the `torchvision` stand-in its `timm` needs to import. Other exports
(`compare_dirs`, e.g. hiera-t beside EdgeTAM) add their exact ONNX Runtime row to the same alternation.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from loguru import logger

from acl_models.manifest import ModelFolderError, load_manifest
from app.benchmarks.speed.pairs import DEFAULT_PAIRS, REFERENCE_PAIR, available_pairs, parse_pair
from app.benchmarks.speed.tracking import BenchSettings, bench_tracker
from app.media.textured_clip import make_frames, write_jpeg_folder

OFFICIAL = "official"
OFFICIAL_CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
OFFICIAL_EDGETAM_CONFIG = "configs/edgetam.yaml"
EDGETAM_FAMILY = "edgetam"
REPO = Path(__file__).resolve().parents[3]
OFFICIAL_EDGETAM_VENV = REPO / ".venv-edgetam-official"
OFFICIAL_EDGETAM_SETUP = "bash scripts/setup_official_edgetam.sh"
# What the official predictor imports that the environment must hold: the official code and the `timm` it builds its
# trunk with (torch and the rest come from this project's environment).
OFFICIAL_EDGETAM_NEEDS = ("edgetam-dimos", "timm")
# Run by the environment's Python: the distributions named in argv that it does not have, on one line.
_DISTRIBUTIONS_PROBE = (
    "import importlib.metadata as m, sys; have = {d.metadata['Name'].lower() for d in m.distributions()}; "
    "print(' '.join(n for n in sys.argv[1:] if n not in have))"
)
# The few `torchvision` names `timm` imports (none takes part in a forward pass), beside the environment's set-up.
TORCHVISION_STANDIN = REPO / "scripts" / "official_edgetam" / "standin"
# A compared export's row: "<family or hiera-size>/<pair>", one token like every row name.
ROW_SEPARATOR = "/"
ROW_WIDTH = 24
EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class Row:
    """One row of the table: the pair a child runs, on which export."""

    name: str
    pair: str
    model_dir: Path


@dataclass
class Run:
    whole_s: float
    loop_s: float
    overhead_pct: float | None
    tokens: list[int]
    masks: list[np.ndarray]


def _official_predictor(checkpoint: Path, manifest):
    """The official video predictor of the export's family, at the export's image size."""
    from sam2.build_sam import build_sam2_video_predictor

    overrides = [f"++model.image_size={manifest.image_size}"]
    if manifest.family != EDGETAM_FAMILY:
        return build_sam2_video_predictor(OFFICIAL_CONFIG, str(checkpoint), device="cpu",
                                          hydra_overrides_extra=overrides)
    import sam2.modeling.backbones.timm as official_timm

    # The trunk would download ImageNet weights that the checkpoint replaces anyway.
    create_model = official_timm.create_model
    official_timm.create_model = lambda name, **kwargs: create_model(name, **{**kwargs, "pretrained": False})
    # EdgeTAM's config fixes the cross-attention's query grid at 1024 px's feature grid.
    side = manifest.image_size // manifest.hyper["backbone_stride"]
    overrides.append(f"++model.memory_attention.layer.cross_attention.q_sizes=[{side},{side}]")
    return build_sam2_video_predictor(OFFICIAL_EDGETAM_CONFIG, str(checkpoint), device="cpu",
                                      hydra_overrides_extra=overrides)


def bench_official(checkpoint: Path, manifest, folder: Path, box) -> dict:
    """The official predictor on a JPEG folder, timed from the prompt frame to the last frame."""
    import torch

    predictor = _official_predictor(checkpoint, manifest)
    masks = []
    with torch.inference_mode():
        state = predictor.init_state(str(folder))
        started = time.perf_counter()
        predictor.add_new_points_or_box(state, 0, 1, box=list(box))
        for _, _, logits in predictor.propagate_in_video(state):
            masks.append(np.packbits((logits[0, 0] > 0).numpy()))
    last_frame_at = time.time()
    elapsed = time.perf_counter() - started
    return {"fps": len(masks) / elapsed, "loop_s": elapsed, "last_frame_at": last_frame_at, "tokens": [], "masks": masks}


def child_run(settings: BenchSettings, name: str, folder: Path, result: Path, checkpoint: Path | None) -> int:
    """One timed run in this process (`name` is OFFICIAL or a pair); the result goes to `result` as .npz."""
    from PIL import Image

    box = tuple(json.loads(folder.with_suffix(".json").read_text()))
    if name == OFFICIAL:
        out = bench_official(checkpoint, load_manifest(settings.model_dir), folder, box)
        overhead = np.nan
    else:
        # Read as the official predictor's init_state does: every frame before the loop.
        frames = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(folder.glob("*.jpg"))]
        backend, precision, overlap = parse_pair(name)
        out = bench_tracker(
            settings.model_dir, frames, box, settings.mode, len(frames), backend, precision, keep_masks=True,
            overlap=overlap,
        )
        overhead = out["overhead_pct"]
    np.savez(
        result, loop_s=out["loop_s"], last_frame_at=out["last_frame_at"], overhead_pct=overhead,
        tokens=np.asarray(out["tokens"], dtype=np.int64), masks=np.stack(out["masks"]),
    )
    return 0


def official_edgetam_problem(venv: Path) -> str | None:
    """Why the official EdgeTAM predictor cannot run with `venv`'s Python, or None: no environment, or one that lacks
    the official package or the `timm` it builds RepViT-M1 with (this project's export needs neither)."""
    python = venv / "bin" / "python"
    if not python.exists():
        return (f"the official EdgeTAM predictor runs in {venv.name}, which does not exist; "
                f"make it with `{OFFICIAL_EDGETAM_SETUP}`")
    probe = subprocess.run([str(python), "-c", _DISTRIBUTIONS_PROBE, *OFFICIAL_EDGETAM_NEEDS],
                           capture_output=True, text=True)
    missing = probe.stdout.split() if probe.returncode == 0 else list(OFFICIAL_EDGETAM_NEEDS)
    if not missing:
        return None
    return (f"the official EdgeTAM environment {venv.name} lacks {', '.join(missing)}; "
            f"make it again with `{OFFICIAL_EDGETAM_SETUP}`")


def run_child(child_command: list[str], row: Row, settings: BenchSettings, checkpoint: Path, clip: Path,
              result: Path) -> Run:
    """`child_command` (the front door's own command line) timing `row` in a process of its own."""
    # Idle OpenMP threads of the official predictor sleep, as ONNX Runtime's do here: on
    # shared cores PyTorch's default spin-waiting makes it several times slower, which
    # would flatter the tracker.
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    if row.pair == OFFICIAL and load_manifest(row.model_dir).family == EDGETAM_FAMILY:
        child_command = [str(OFFICIAL_EDGETAM_VENV / "bin" / "python"), *child_command[1:]]
        env["PYTHONPATH"] = os.pathsep.join([str(TORCHVISION_STANDIN), str(REPO), env.get("PYTHONPATH", "")])
    command = [*child_command, "--child", row.pair, "--clip", str(clip), "--result", str(result),
               "--model-dir", str(row.model_dir), "--mode", settings.mode]
    if checkpoint:
        command += ["--official", str(checkpoint)]
    spawned_at = time.time()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{row.name} run failed: "
                           f"{done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}")
    data = np.load(result)
    overhead = float(data["overhead_pct"])
    return Run(
        whole_s=float(data["last_frame_at"]) - spawned_at, loop_s=float(data["loop_s"]),
        overhead_pct=None if np.isnan(overhead) else overhead, tokens=data["tokens"].tolist(), masks=list(data["masks"]),
    )


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.unpackbits(a).astype(bool), np.unpackbits(b).astype(bool)
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def _export_label(model_dir: Path) -> str:
    """"hiera-t" for a SAM 2.1 tiny export, "edgetam" for an EdgeTAM one."""
    manifest = load_manifest(model_dir)
    return manifest.family if manifest.family == EDGETAM_FAMILY else f"hiera-{manifest.model_size}"


def compare_size_problem(model_dir: Path, compare_dirs: tuple[Path, ...]) -> str | None:
    """A compared export that is no export, or at another image size (it would time unlike work): the first such
    export, named with the fix."""
    size = load_manifest(model_dir).image_size
    for folder in compare_dirs:
        try:
            other = load_manifest(folder).image_size
        except ModelFolderError as exc:
            return f"--compare: {exc}"
        if other != size:
            return (f"--compare {folder} is a {other} px export but --model-dir {model_dir} is {size} px: "
                    f"export it at {size} px (convert/export_onnx.py --image-size {size}) to compare like with like")
    return None


def side_by_side(settings: BenchSettings, checkpoint: Path, pairs: str | None, child_command: list[str],
                 compare_dirs: tuple[Path, ...] = ()) -> int:
    """Time every available pair, the official predictor and each compared export's exact path, alternated,
    and print the medians and agreement."""
    edgetam = load_manifest(settings.model_dir).family == EDGETAM_FAMILY
    problem = compare_size_problem(settings.model_dir, compare_dirs)
    if problem is None and edgetam:
        problem = official_edgetam_problem(OFFICIAL_EDGETAM_VENV)
    if problem:
        print(f"ERROR {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
    chosen = available_pairs(pairs or DEFAULT_PAIRS, settings.model_dir)
    if REFERENCE_PAIR not in chosen:
        chosen.insert(0, REFERENCE_PAIR)
    rows = [Row(name, name, settings.model_dir) for name in [OFFICIAL, *chosen]]
    rows += [Row(f"{_export_label(d)}{ROW_SEPARATOR}{REFERENCE_PAIR}", REFERENCE_PAIR, d) for d in compare_dirs]
    names = [row.name for row in rows]
    runs: dict[str, list[Run]] = {name: [] for name in names}
    frames, boxes = make_frames(settings.frames)
    x, y, w, h = boxes[0]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_jpeg_folder(Path(tmp) / "clip", frames)
        clip.with_suffix(".json").write_text(json.dumps([x, y, x + w, y + h]))
        for repeat in range(settings.repeats):
            # Alternate the order so that a slow spell on the shared machine does not hit one side only.
            for row in rows if repeat % 2 == 0 else rows[::-1]:
                runs[row.name].append(run_child(child_command, row, settings, checkpoint, clip, Path(tmp) / "result.npz"))
                logger.info("run {}/{} {}: whole {:.1f} s", repeat + 1, settings.repeats, row.name,
                            runs[row.name][-1].whole_s)
    _print_table(settings, names, runs, load_before)
    return 0


def _print_table(settings: BenchSettings, names: list[str], runs: dict[str, list[Run]], load_before: float) -> None:
    official = runs[OFFICIAL]
    official_whole = statistics.median(r.whole_s for r in official)
    official_loop = statistics.median(r.loop_s for r in official)
    reference = runs[REFERENCE_PAIR][0]
    frames = settings.frames
    print(f"{frames} frames, {settings.mode} mode, median of {settings.repeats} alternated runs per row, one process "
          f"each; {os.cpu_count()} CPUs, load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end")
    print(f"{'run':<{ROW_WIDTH}}{'whole s':>9}{'FPS':>7}{'ratio':>7}{'loop ms/f':>11}{'FPS':>7}{'ratio':>7}"
          f"{'overhead':>10}{'flips':>7}{'min IoU':>9}")
    for name in names:
        whole = statistics.median(r.whole_s for r in runs[name])
        loop = statistics.median(r.loop_s for r in runs[name])
        overheads = [r.overhead_pct for r in runs[name] if r.overhead_pct is not None]
        overhead = f"{statistics.median(overheads):.1f} %" if overheads else "-"
        agreement = f"{'-':>7}{'-':>9}"
        if name != OFFICIAL and ROW_SEPARATOR not in name:
            first = runs[name][0]
            flips = sum(a != b for a, b in zip(first.tokens, reference.tokens))
            iou = min(_mask_iou(a, b) for a, b in zip(first.masks, reference.masks))
            agreement = f"{flips:>7}{iou:>9.3f}"
        print(f"{name:<{ROW_WIDTH}}{whole:>9.1f}{frames / whole:>7.2f}{official_whole / whole:>6.2f}x"
              f"{1000 * loop / frames:>11.0f}{frames / loop:>7.2f}{official_loop / loop:>6.2f}x"
              f"{overhead:>10}{agreement}")
    _print_against_compared(names, runs)


def _print_against_compared(names: list[str], runs: dict[str, list[Run]]) -> None:
    """Each of this export's pairs against each compared export's exact path: speed-ups whole and in the loop."""
    ours = [n for n in names if n != OFFICIAL and ROW_SEPARATOR not in n]
    for compared in (n for n in names if ROW_SEPARATOR in n):
        whole = statistics.median(r.whole_s for r in runs[compared])
        loop = statistics.median(r.loop_s for r in runs[compared])
        ratios = ", ".join(
            f"{name} {whole / statistics.median(r.whole_s for r in runs[name]):.2f}x whole "
            f"{loop / statistics.median(r.loop_s for r in runs[name]):.2f}x loop" for name in ours)
        print(f"speed-up over {compared}: {ratios}")
