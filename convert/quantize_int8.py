"""Post-training int8 quantisation (NNCF) of the image encoder and memory attention: OpenVINO's int8 experiment.

    python convert/quantize_int8.py --models om_model [--frames 40]
    python scripts/bench.py --model-dir om_model --official CHECKPOINT --pairs onnx:fp32,openvino:bf16,openvino:int8

Writes `image_encoder_ov_int8.xml/.bin` and `memory_attention_ov_int8.xml/.bin`
(OpenVINO IR with int8 weights and activations) next to the ONNX files and lists
them in manifest.json, which is where the OpenVINO runner finds them; a new
export rewrites the manifest, so graphs quantised from an older export are
never picked up.

Only the two heavy graphs are quantised. The mask decoder's IoU and
object-score heads make the tracking decisions and stay f32; the memory
encoder stays f32 too: it is about 6 % of the int8 frame time, and its output
is the memory every later frame attends to, so its rounding would add up over
the clip.

The tracker's command line does not offer int8: it keeps every decision on
the random-weight clip and the leave clip but changes the demo clip's in sam2
mode (the near-equal IoUs of the distractor takeover; docs/speed.md), so only
the benchmark runs it (`openvino:int8`).

Calibration uses what the tracker really feeds: the f32 tracker (ONNX Runtime)
runs the project's generated clips - the colour demo clip, its leave-and-return
clip and the textured random clip, drawn with another seed than the clips the
tests track - and every image-encoder input and memory-attention input it makes
is kept as a calibration sample. Memory attention's inputs are the real memory
bank of those runs (frames, pointers, validity flags), not random arrays.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
from loguru import logger

from acl_models.base import BackendError, WrappedRunner, import_problem
from acl_models.bundle import open_bundle_with
from acl_models.manifest import MANIFEST_FILE, ModelFolderError, load_manifest
from acl_models.onnx_runner import OnnxRunner
from acl_models.openvino_runner import INT8_GRAPHS, INT8_KEY, int8_file_name
from app.media import colour_clip, textured_clip
from app.samurai.config import load_config
from app.samurai.tracker import SamuraiTracker

# Calibration clips are drawn with this seed; the tests and benchmarks track seed 0.
CALIBRATION_SEED = 1
CALIBRATION_MODE = "samurai"
INSTALL_HINT = "install it with `pip install -e .[quantize]`"


@dataclass
class Clip:
    name: str
    frames: list[np.ndarray]
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 on the first frame


def calibration_clips(frames: int | None, seed: int = CALIBRATION_SEED) -> list[Clip]:
    """The generated clips the samples come from, each cut to `frames` frames when given."""
    clips = []
    for name, make in (("demo", colour_clip.make_frames), ("leave", colour_clip.make_leave_frames),
                       ("textured", textured_clip.make_frames)):
        images, boxes = make(seed=seed)
        x, y, w, h = boxes[0]
        clips.append(Clip(name, images[:frames] if frames else images, (x, y, x + w, y + h)))
    return clips


class CapturingRunner(WrappedRunner):
    """An exact runner that keeps a copy of every input it is given (the calibration samples)."""

    def __init__(self, path: Path, threads: int | None = None):
        super().__init__(OnnxRunner(path, threads=threads))
        self.samples: list[dict[str, np.ndarray]] = []

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.samples.append({name: np.array(inputs[name]) for name in self.input_names})
        return self.runner.run(inputs)


def capture_samples(
    model_dir: Path, clips: list[Clip], threads: int | None = None, graphs: tuple[str, ...] = INT8_GRAPHS
) -> dict[str, list[dict]]:
    """Per graph in `graphs`, every input the f32 tracker gave it over the clips."""
    config = load_config(None, load_manifest(model_dir).model_size, CALIBRATION_MODE)
    samples: dict[str, list[dict]] = {name: [] for name in graphs}
    for clip in clips:
        with open_bundle_with(model_dir, lambda path: CapturingRunner(path, threads)) as bundle:
            tracker = SamuraiTracker(bundle, config, num_frames=len(clip.frames))
            for i, frame in enumerate(clip.frames):
                tracker.step(i, frame, clip.box if i == 0 else None)
        runners = bundle.runners
        for name in graphs:
            samples[name] += runners[name].samples
        logger.info("calibration clip {}: {} frames, {} memory-attention samples", clip.name, len(clip.frames),
                    len(runners["memory_attention"].samples))
    return samples


def nncf_problem() -> str | None:
    """Why NNCF or OpenVINO cannot be used here, or None when both import."""
    return import_problem("openvino", "OpenVINO") or import_problem("nncf", "NNCF")


def quantize_graph(onnx_path: Path, samples: list[dict[str, np.ndarray]], out: Path) -> None:
    """NNCF post-training quantisation of one graph (transformer preset) on `samples`, saved as OpenVINO IR."""
    problem = nncf_problem()
    if problem:
        raise BackendError(f"{problem}; {INSTALL_HINT}")
    import nncf
    import openvino as ov

    model = ov.Core().read_model(str(onnx_path))
    quantized = nncf.quantize(model, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER,
                              subset_size=len(samples))
    ov.save_model(quantized, str(out), compress_to_fp16=False)


def quantize(
    model_dir: Path, frames: int | None = None, threads: int | None = None, graphs: tuple[str, ...] = INT8_GRAPHS
) -> dict:
    """Quantise `graphs` of `model_dir`, list them in its manifest.json; returns what was recorded there."""
    model_dir = Path(model_dir)
    manifest = load_manifest(model_dir)
    clips = calibration_clips(frames)
    samples = capture_samples(model_dir, clips, threads, graphs)
    for name in graphs:
        out = model_dir / int8_file_name(name)
        quantize_graph(model_dir / manifest.models[name]["file"], samples[name], out)
        manifest.raw["models"][name][INT8_KEY] = out.name
        logger.info("quantised {} on {} samples -> {}", name, len(samples[name]), out)
    record = {
        "tool": f"nncf {version('nncf')}",
        "graphs": list(graphs),
        "calibration": {clip.name: len(clip.frames) for clip in clips},
        "calibration_seed": CALIBRATION_SEED,
        "samples": {name: len(samples[name]) for name in graphs},
    }
    manifest.raw[INT8_KEY] = record
    (model_dir / MANIFEST_FILE).write_text(json.dumps(manifest.raw, indent=2))
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, default=Path("om_model"), help="exported model folder (manifest.json)")
    parser.add_argument("--frames", type=int, help="calibrate on the first FRAMES frames of each clip (default: all)")
    parser.add_argument("--threads", type=int, help="ONNX Runtime threads of the calibration runs")
    args = parser.parse_args(argv)
    if args.frames is not None and args.frames < 2:
        parser.error("--frames must be at least 2 (the second frame is the first that runs memory attention)")
    try:
        quantize(args.models, args.frames, args.threads)
    except (ModelFolderError, BackendError) as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
