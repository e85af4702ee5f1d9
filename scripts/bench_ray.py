"""What Ray costs on one host: `eval.py run --ray --workers N` against `eval.py run --workers N`, alternated.

    python scripts/bench_ray.py [--model-dir om_model] [--workers 2] [--sequences 6] [--frames 8] [--repeats 3]

Both commands track the same generated LaSOT-layout dataset (cuts of the demo
clip) into fresh results folders, one ONNX Runtime thread per worker, and are
timed as whole processes (imports, starting Ray or the pool, loading the
models, tracking, writing). It prints the median sequences/s of each, their
ratio, and checks that both wrote the same boxes. Without --model-dir it
exports the demo colour checkpoint at --image-size (needs the export extra).
"""

from __future__ import annotations

import argparse
import filecmp
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

from app.media.colour_clip import make_frames

REPO = Path(__file__).resolve().parents[1]
CLASS = "red"  # LaSOT folder class of the generated sequences
JPEG_QUALITY = 95


def write_dataset(root: Path, sequences: int, frames: int) -> Path:
    """LaSOT layout: red/red-K/{img/%08d.jpg, groundtruth.txt, full_occlusion.txt, out_of_view.txt}."""
    images, boxes = make_frames(frames + sequences)
    for k in range(sequences):
        folder = root / CLASS / f"{CLASS}-{k + 1}"
        (folder / "img").mkdir(parents=True)
        for i in range(frames):
            Image.fromarray(images[k + i]).save(folder / "img" / f"{i + 1:08d}.jpg", quality=JPEG_QUALITY)
        (folder / "groundtruth.txt").write_text("".join(",".join(map(str, b)) + "\n" for b in boxes[k:k + frames]))
        for name in ("full_occlusion.txt", "out_of_view.txt"):
            (folder / name).write_text(",".join(["0"] * frames) + "\n")
    return root


def export_demo(out: Path, image_size: int) -> Path:
    import torch

    from convert.export_onnx import export
    from convert.demo_checkpoint import demo_state_dict

    checkpoint = out / "demo_colour_sam2.1_hiera_tiny.pt"
    torch.save({"model": demo_state_dict()}, checkpoint)
    export(checkpoint, out / "models", image_size=image_size)
    return out / "models"


def timed_run(root: Path, models: Path, out: Path, extra: list[str]) -> float:
    command = [sys.executable, str(REPO / "scripts" / "eval.py"), "run", "--dataset", "lasot", "--root", str(root),
               "--model-dir", str(models), "--out", str(out), "--backend", "onnx", "--threads", "1", *extra]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", type=Path, help="an exported model folder (default: the demo checkpoint)")
    parser.add_argument("--image-size", type=int, default=128, help="image size of the demo export")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sequences", type=int, default=6)
    parser.add_argument("--frames", type=int, default=8, help="frames per sequence")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        models = args.model_dir or export_demo(tmp, args.image_size)
        root = write_dataset(tmp / "lasot", args.sequences, args.frames)
        variants = {
            f"--workers {args.workers}": ["--workers", str(args.workers)],
            f"--ray --workers {args.workers}": ["--ray", "--workers", str(args.workers)],
        }
        seconds: dict[str, list[float]] = {name: [] for name in variants}
        for repeat in range(args.repeats):
            for name, extra in variants.items():
                out = tmp / f"{name.replace(' ', '')}_{repeat}"
                seconds[name].append(timed_run(root, models, out, extra))
                print(f"run {repeat + 1}/{args.repeats} {name:<22} {seconds[name][-1]:6.1f} s", flush=True)
        outs = [tmp / f"{name.replace(' ', '')}_0" for name in variants]
        names = sorted(p.name for p in outs[0].glob("*.txt") if not p.name.endswith("_time.txt"))
        same = bool(names) and filecmp.cmpfiles(outs[0], outs[1], names, shallow=False)[0] == names
    print(f"\n{args.sequences} sequences x {args.frames} frames, {args.workers} workers, median of {args.repeats}, "
          "whole process:")
    rates = {}
    for name, values in seconds.items():
        rates[name] = args.sequences / statistics.median(values)
        print(f"  {name:<22} {statistics.median(values):6.1f} s  {rates[name]:.2f} sequences/s")
    local, ray = rates.values()
    extra_s = statistics.median(seconds[list(variants)[1]]) - statistics.median(seconds[list(variants)[0]])
    print(f"  Ray / local: {ray / local:.2f}x sequences/s ({extra_s:+.1f} s per run); "
          f"same boxes: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
