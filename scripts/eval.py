"""Evaluate the tracker on the standard benchmarks: track, resume, shard, score, plot and compare.

    python scripts/eval.py run --dataset lasot --root data/LaSOT --model-dir om_model --out results/fp32
    python scripts/eval.py run --ray auto --backend acl --dataset lasot --root /data/LaSOT --model-dir /models/om \
        --out results/fp32        (on a Ray cluster: docs/cluster.md)
    python scripts/eval.py score --dataset lasot --root data/LaSOT --results results/fp32 results/int8 --out report
    python scripts/eval.py compare --dataset lasot --root data/LaSOT --results results/fp32 results/int8 --out report
    python scripts/eval.py sequence out/track.txt groundtruth.txt [--absent full_occlusion.txt]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from loguru import logger

from acl_models.base import BackendError
from acl_models.manifest import ModelFolderError
from acl_models.select import BACKENDS
from app.benchmarks.datasets import DATASETS, PROTOCOL_GOT10K, DatasetError, load_attributes, load_dataset
from app.benchmarks.metrics import MetricError
from app.benchmarks.plots import plot_runs
from app.benchmarks.report import (
    PACKS,
    ScoreError,
    attribute_table,
    common_sequences,
    compare_runs,
    format_attribute_table,
    format_comparison,
    format_table,
    metric_keys,
    pack,
    report_dict,
    run_names,
    score_runs,
    score_track,
)
from app.benchmarks.runner import RunError, RunSettings, parse_shard, run_dataset
from app.media.outputs import write_summary
from app.media.whole_files import OutputError
from app.samurai.config import ConfigError

EXIT_SEQUENCES_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
REPORT_FILE = "report.json"
COMPARISON_FILE = "comparison.json"


def _dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, choices=DATASETS)
    parser.add_argument("--root", required=True, type=Path, help="the dataset folder (layouts in docs/evaluation.md)")
    parser.add_argument("--split", default="val", choices=["val", "test"], help="GOT-10k split (default val)")
    parser.add_argument("--sequences", help="comma-separated sequence names (default: all)")
    parser.add_argument("--verbose", action="store_true")


def _score_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", required=True, nargs="+", type=Path, help="results folders, one per run")
    parser.add_argument("--out", required=True, type=Path, help="report folder")
    parser.add_argument("--skip-missing", action="store_true", help="score only sequences every folder has")
    parser.add_argument("--attributes", type=Path, help="attribute files folder (default ROOT/att)")
    parser.add_argument("--no-plots", action="store_true")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="track every sequence into RESULTS/<sequence>.txt (resumes)")
    _dataset_arguments(run)
    run.add_argument("--model-dir", type=Path, default=Path("om_model"))
    run.add_argument("--out", required=True, type=Path, help="results folder")
    run.add_argument("--config", type=Path, help="tracker YAML (default configs/samurai.yaml)")
    run.add_argument("--mode", choices=["samurai", "sam2"], help="override the config's mode")
    run.add_argument("--backend", choices=list(BACKENDS), default="auto")
    run.add_argument("--onnx-variant", choices=["fp32", "fp16", "int8"], default="fp32")
    run.add_argument("--workers", type=int,
                     help="sequences tracked in parallel processes (default 1; with --ray: all the cluster fits)")
    run.add_argument("--threads", type=int, help="ONNX Runtime threads per process (default: cores / workers)")
    run.add_argument("--overlap", action=argparse.BooleanOptionalAction, default=False,
                     help="encode the next frame while this one is tracked (same boxes; the threads are split "
                          "between the two, so measure it with scripts/bench.py --overlap first)")
    run.add_argument("--shard", default="1/1", help="K/N: this machine takes sequences K, K+N, K+2N, ...")
    run.add_argument("--ray", nargs="?", const="local", metavar="auto|ADDRESS",
                     help="track on a Ray cluster: no value starts one here, `auto` or HOST:6379 or "
                          "ray://HOST:10001 joins one, with this host's Ray token when the cluster asks for one "
                          "(docs/cluster.md)")
    run.add_argument("--cpus-per-worker", type=int, default=1,
                     help="with --ray: CPUs each CPU-backend worker asks for (and its runtime's threads)")
    score = commands.add_parser("score", help="published metrics of one or more results folders")
    _dataset_arguments(score)
    _score_arguments(score)
    score.add_argument("--pack", choices=PACKS, help="also write the zip the GOT-10k / TrackingNet server takes")
    compare = commands.add_parser("compare", help="score runs and list per-sequence differences to the first")
    _dataset_arguments(compare)
    _score_arguments(compare)
    sequence = commands.add_parser("sequence", help="score one track.txt against its ground truth (every frame "
                                                    "visible unless --absent flags some)")
    sequence.add_argument("track", type=Path)
    sequence.add_argument("groundtruth", type=Path)
    sequence.add_argument("--absent", type=Path, help="file of 0/1 flags per frame (e.g. LaSOT full_occlusion.txt)")
    sequence.add_argument("--verbose", action="store_true")
    return parser.parse_args(argv)


def _dataset(args: argparse.Namespace):
    dataset = load_dataset(args.dataset, args.root, args.split)
    if args.sequences:
        dataset = dataset.select([s.strip() for s in args.sequences.split(",") if s.strip()])
    return dataset


def _run_on_ray(args: argparse.Namespace, dataset, settings: RunSettings):
    try:
        from app.benchmarks.ray_runner import ClusterSettings, run_on_ray
    except ImportError as exc:
        if exc.name != "ray":
            raise
        raise RunError("--ray needs Ray, which is not installed here; pip install -e .[cluster]") from None
    cluster = ClusterSettings(args.ray, args.workers, args.cpus_per_worker)
    return run_on_ray(dataset, args.out, settings, cluster, parse_shard(args.shard))


def command_run(args: argparse.Namespace) -> int:
    dataset = _dataset(args)
    settings = RunSettings(args.model_dir, args.config, args.mode, args.backend, args.onnx_variant, args.threads,
                           args.overlap)
    try:
        if args.ray:
            summary = _run_on_ray(args, dataset, settings)
        else:
            summary = run_dataset(dataset, args.out, settings, args.workers or 1, parse_shard(args.shard))
    except KeyboardInterrupt:
        logger.warning("interrupted; finished sequences are in {}: run the same command again to resume", args.out)
        return EXIT_INTERRUPTED
    logger.info(
        "{} of {} sequences tracked now, {} were already done, {} failed; results in {}",
        len(summary.tracked), summary.sequences, summary.already_done, len(summary.failed), args.out,
    )
    if summary.failed:
        logger.error("no results for {}; fix their frames and run again to track just those",
                     ", ".join(summary.failed))
        return EXIT_SEQUENCES_FAILED
    return 0


def _pack_all(args: argparse.Namespace, dataset) -> None:
    names = run_names(args.results)
    for folder, name in zip(args.results, names):
        path = pack(dataset, folder, args.pack, args.out / f"{name}_{args.pack}.zip")
        logger.info("{} submission: {}", args.pack, path)


def _compare(args: argparse.Namespace, dataset, runs=None) -> None:
    sequences = common_sequences(dataset, args.results, args.skip_missing)
    comparison = compare_runs(dataset, args.results, sequences, runs)
    print(format_comparison(comparison))
    args.out.mkdir(parents=True, exist_ok=True)
    write_summary(args.out / COMPARISON_FILE, comparison)
    logger.info("comparison: {}", args.out / COMPARISON_FILE)


def command_score(args: argparse.Namespace, comparing: bool = False) -> int:
    dataset = _dataset(args)
    if comparing and len(args.results) < 2:
        raise ScoreError("compare needs at least two --results folders; the first is the baseline")
    if getattr(args, "pack", None):
        _pack_all(args, dataset)
        if not dataset.scorable:
            return 0
    if comparing and not dataset.scorable:
        _compare(args, dataset)
        return 0
    runs = score_runs(dataset, args.results, args.skip_missing)
    keys = metric_keys(dataset)
    print(f"{dataset.name}: {len(runs[0].per_sequence)} sequences (values in %)")
    print(format_table(runs, keys))
    attributes = load_attributes(dataset, args.attributes)
    table = None
    if attributes is not None:
        table = attribute_table(runs, attributes, dataset.attribute_names)
        print(format_attribute_table(table, runs))
    args.out.mkdir(parents=True, exist_ok=True)
    write_summary(args.out / REPORT_FILE, report_dict(dataset, runs, table))
    if not args.no_plots:
        for path in plot_runs(runs, args.out, got10k=dataset.protocol == PROTOCOL_GOT10K):
            logger.info("plot: {}", path)
    logger.info("report: {}", args.out / REPORT_FILE)
    if comparing:
        _compare(args, dataset, runs)
    return 0


def command_sequence(args: argparse.Namespace) -> int:
    print(score_track(args.track, args.groundtruth, args.absent))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="DEBUG" if args.verbose else "INFO", format="<level>{level: <7}</level> {message}")
    try:
        if args.command == "run":
            return command_run(args)
        if args.command == "sequence":
            return command_sequence(args)
        return command_score(args, comparing=args.command == "compare")
    except (DatasetError, MetricError, RunError, ScoreError, ModelFolderError, ConfigError, BackendError,
            OutputError) as exc:
        logger.error("{}", exc)
        return EXIT_BAD_INPUT
    except json.JSONDecodeError as exc:
        logger.error("a run.json in the results folder is damaged ({}); delete it and run again", exc)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
