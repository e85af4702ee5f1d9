"""Per-graph time of the deployed runners against the official PyTorch calls, on the same inputs.

    python scripts/profile_stages.py --checkpoint CKPT --model-dir DIR [--backend onnx] [--threads 2] [--ops]

Each of the four sub-models runs on the backend and its official counterpart
runs in PyTorch (`model.forward_image`, the official memory-attention call with
a full memory of num_maskmem frames and max_obj_ptrs_in_encoder pointers, as in
the tracking loop, `_encode_new_memory`, `_forward_sam_heads`), alternated in
one process with the same thread count, --repeats times; it prints the medians
and the ratio per graph. The clock is the process CPU time by default (a shared
machine's other work then counts on neither side; with one thread it is the
compute time), or wall time with --clock wall. With --ops and ONNX Runtime it
also prints where the time of each graph goes, by operator type.
"""

from __future__ import annotations

import argparse
import collections
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acl_models.base import BackendError  # noqa: E402
from acl_models.manifest import ModelFolderError, load_constants, load_manifest, model_file  # noqa: E402
from acl_models.select import DEFAULT_PRECISION, runner_factory  # noqa: E402
from convert import export_onnx, reference  # noqa: E402
from convert.checkpoint import CheckpointError, load_model  # noqa: E402

CLOCKS = {"process": time.process_time, "wall": time.perf_counter}
TOP_OPS = 8


def official_cases(model, constants: dict[str, np.ndarray], seed: int) -> dict[str, tuple[dict, Callable[[], object]]]:
    """Per graph: (the graph's inputs, the official call on the same values)."""
    g = torch.Generator().manual_seed(seed)
    image = {"image": torch.randn(1, 3, model.image_size, model.image_size, generator=g)}
    memory = export_onnx.memory_attention_inputs(model, constants, model.num_maskmem, model.max_obj_ptrs_in_encoder, g)
    encoder = export_onnx.memory_encoder_inputs(model, False, g)
    decoder = export_onnx.mask_decoder_inputs(model, 1, g)
    heads = {k: v for k, v in decoder.items() if k != "min_obj_score"}  # the official heads gate at their own value
    return {
        "image_encoder": (image, lambda: model.forward_image(image["image"])),
        "memory_attention": (
            export_onnx.static_memory_attention_inputs(model, memory, g),
            lambda: reference.memory_attention(model, **memory),
        ),
        "memory_encoder": (encoder, lambda: reference.memory_encoder(model, **encoder)),
        "mask_decoder": (decoder, lambda: reference.sam_heads(model, **heads, multimask=True)),
    }


def op_profile(path: Path, feeds: dict[str, np.ndarray], threads: int, repeats: int) -> list[tuple[str, float]]:
    """(operator type, share of the graph's kernel time) from ONNX Runtime's own profiler, largest first."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(repeats):
        session.run(None, feeds)
    trace = Path(session.end_profiling())
    per_op: collections.Counter[str] = collections.Counter()
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op[event["args"]["op_name"]] += event["dur"]
    trace.unlink()
    total = sum(per_op.values()) or 1
    return [(op, us / total) for op, us in per_op.most_common(TOP_OPS)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True, help="the checkpoint the models were exported from")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--backend", choices=["onnx", "openvino"], default="onnx")
    parser.add_argument("--precision", default=DEFAULT_PRECISION, help="OpenVINO precision")
    parser.add_argument("--threads", type=int, default=2, help="threads on both sides")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--clock", choices=list(CLOCKS), default="process")
    parser.add_argument("--ops", action="store_true", help="ONNX Runtime: time by operator type per graph")
    args = parser.parse_args(argv)
    try:
        manifest = load_manifest(args.model_dir)
        model = load_model(args.checkpoint, None, manifest.image_size)[0]
        factory = runner_factory(args.backend, args.model_dir, precision=args.precision, threads=args.threads)
    except (ModelFolderError, CheckpointError, BackendError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    clock = CLOCKS[args.clock]
    header = f"{'graph':18s} {args.backend + ' ms':>10s} {'torch ms':>10s}  ratio"
    print(f"{header}   ({args.threads} threads, {args.clock} time)")
    for name, (inputs, official) in official_cases(model, load_constants(manifest), seed=0).items():
        path = model_file(manifest, name)
        runner = factory(path)
        feeds = {k: v.numpy() for k, v in inputs.items() if k in runner.input_names}
        ours, theirs = [], []
        with torch.inference_mode():
            # Warm-up: first-run allocations and compilation.
            runner.run(feeds)
            official()
            for _ in range(args.repeats):
                start = clock()
                runner.run(feeds)
                ours.append(clock() - start)
                start = clock()
                official()
                theirs.append(clock() - start)
        runner.close()
        mine, base = statistics.median(ours) * 1e3, statistics.median(theirs) * 1e3
        print(f"{name:18s} {mine:10.1f} {base:10.1f}  {base / mine:5.2f}x")
        if args.ops and args.backend == "onnx":
            shares = op_profile(path, feeds, args.threads, args.repeats)
            print("    " + ", ".join(f"{op} {100 * share:.0f} %" for op, share in shares))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
