"""Scores of results folders, per-attribute tables, variant comparison and server submission zips.

Each results folder is one run (a model, mode or variant), named by the
folder's name. All values are fractions in [0, 1]; the printed tables show
percentages.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app.benchmarks.datasets import (
    PROTOCOL_GENERIC,
    PROTOCOL_GOT10K,
    PROTOCOL_LASOT,
    Dataset,
    DatasetError,
    Sequence,
    read_boxes,
    read_flags,
)
from app.benchmarks.metrics import (
    MetricError,
    SequenceCurves,
    box_iou,
    curve_scores,
    got10k_curve,
    got10k_ious,
    got10k_scores,
    mean_curves,
    sequence_curves,
)
from app.benchmarks.runner import result_path, time_path

ONE_PASS_KEYS = ("success_auc", "norm_precision", "precision", "op50", "op75")
GOT10K_KEYS = ("ao", "sr50", "sr75")
DIVERGENCE_IOU = 0.5
PACKS = ("got10k", "trackingnet")
PERCENT = 100.0
SHOWN_MISSING = 5


class ScoreError(ValueError):
    """Results that cannot be scored as asked; the one-line message says what to do."""


@dataclass
class RunScores:
    name: str
    folder: Path
    overall: dict[str, float]
    per_sequence: dict[str, dict[str, float | None]]
    curves: dict[str, list[float]]
    sequence_curves: dict[str, SequenceCurves] = field(default_factory=dict, repr=False)


def metric_keys(dataset: Dataset) -> tuple[str, ...]:
    return GOT10K_KEYS if dataset.protocol == PROTOCOL_GOT10K else ONE_PASS_KEYS


def run_names(folders: list[Path]) -> list[str]:
    names = [Path(f).name for f in folders]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ScoreError(f"two results folders are named {duplicates[0]}; rename one, runs are named by folder")
    return names


def common_sequences(dataset: Dataset, folders: list[Path], skip_missing: bool) -> tuple[Sequence, ...]:
    """The sequences every folder has results for; missing ones are an error unless skip_missing."""
    for folder in folders:
        if not Path(folder).is_dir():
            raise ScoreError(f"results folder {folder} does not exist; pass the --out folder of `eval.py run`")
    present = []
    for sequence in dataset.sequences:
        lacking = [f for f in folders if not result_path(f, sequence.name).is_file()]
        if not lacking:
            present.append(sequence)
        elif not skip_missing:
            missing = [s.name for s in dataset.sequences if not result_path(lacking[0], s.name).is_file()]
            raise ScoreError(
                f"{lacking[0]} lacks {len(missing)} of {len(dataset.sequences)} sequences "
                f"({', '.join(missing[:SHOWN_MISSING])}{', ...' if len(missing) > SHOWN_MISSING else ''}); "
                "finish them with `eval.py run` (it resumes) or pass --skip-missing"
            )
    if not present:
        raise ScoreError("no sequence has results in every folder; run `eval.py run` first")
    return tuple(present)


def check_scorable(dataset: Dataset) -> None:
    if not dataset.scorable:
        raise ScoreError(
            f"{dataset.name} at {dataset.root} has only first-frame boxes (a test split): its server scores it; "
            "use --pack got10k or --pack trackingnet (compare still lists divergent frames)"
        )


def read_result(folder: Path, name: str) -> np.ndarray:
    try:
        return read_boxes(result_path(folder, name))
    except DatasetError as exc:
        raise ScoreError(str(exc).replace("annotation file", "results file")) from None


def _scoring_error(folder: Path, sequence: Sequence, exc: MetricError) -> ScoreError:
    return ScoreError(f"{result_path(folder, sequence.name)}: {exc}")


def score_folder(dataset: Dataset, folder: Path, name: str, sequences: tuple[Sequence, ...]) -> RunScores:
    if dataset.protocol == PROTOCOL_GOT10K:
        return _score_got10k(folder, name, sequences)
    per_sequence, curves = {}, {}
    for sequence in sequences:
        try:
            curves[sequence.name] = sequence_curves(
                read_result(folder, sequence.name), sequence.ground_truth, dataset.protocol, sequence.visible
            )
        except MetricError as exc:
            raise _scoring_error(folder, sequence, exc) from None
        per_sequence[sequence.name] = {
            **curve_scores(curves[sequence.name]), "mean_overlap": curves[sequence.name].mean_overlap
        }
    mean = mean_curves(list(curves.values()))
    return RunScores(
        name,
        Path(folder),
        curve_scores(mean),
        per_sequence,
        {"success": mean.success.tolist(), "precision": mean.precision.tolist(),
         "norm_precision": mean.norm_precision.tolist()},
        curves,
    )


def _score_got10k(folder: Path, name: str, sequences: tuple[Sequence, ...]) -> RunScores:
    per_sequence, pooled = {}, []
    for sequence in sequences:
        if sequence.cover is None:
            raise ScoreError(f"{sequence.name} has no cover.label; GOT-10k val ships one per sequence, re-extract it")
        try:
            ious = got10k_ious(read_result(folder, sequence.name), sequence.ground_truth, sequence.cover,
                               sequence.resolution)
        except MetricError as exc:
            raise _scoring_error(folder, sequence, exc) from None
        pooled.append(ious)
        per_sequence[sequence.name] = got10k_scores(ious) if len(ious) else dict.fromkeys(GOT10K_KEYS)
    ious = np.concatenate(pooled)
    try:
        overall = got10k_scores(ious)
    except MetricError as exc:
        raise ScoreError(f"{folder}: {exc}") from None
    return RunScores(name, Path(folder), overall, per_sequence, {"success": got10k_curve(ious).tolist()})


def score_runs(dataset: Dataset, folders: list[Path], skip_missing: bool = False) -> list[RunScores]:
    folders = [Path(f) for f in folders]
    names = run_names(folders)
    check_scorable(dataset)
    sequences = common_sequences(dataset, folders, skip_missing)
    return [score_folder(dataset, folder, name, sequences) for folder, name in zip(folders, names)]


def attribute_table(
    runs: list[RunScores], attributes: dict[str, frozenset[str]], names: tuple[str, ...]
) -> dict[str, dict]:
    """Attribute -> {"sequences": n, run name -> scores over the sequences with that attribute}."""
    table = {}
    for attribute in names:
        table[attribute] = {"sequences": 0}
        for run in runs:
            chosen = [c for s, c in run.sequence_curves.items() if attribute in attributes.get(s, ())]
            table[attribute]["sequences"] = len(chosen)
            if chosen:
                table[attribute][run.name] = curve_scores(mean_curves(chosen))
    return table


def _cells(values: list[float | None], width: int) -> str:
    return "".join(f"{'-' if v is None else f'{v * PERCENT:.1f}':>{width}}" for v in values)


def format_table(runs: list[RunScores], keys: tuple[str, ...]) -> str:
    """One row per run, metrics in percent."""
    width = max(len(k) for k in keys) + 2
    label = max(len("run"), *(len(r.name) for r in runs)) + 2
    header = f"{'run':<{label}}" + "".join(f"{k:>{width}}" for k in keys)
    return "\n".join([header] + [f"{r.name:<{label}}" + _cells([r.overall[k] for k in keys], width) for r in runs])


def format_attribute_table(table: dict[str, dict], runs: list[RunScores], key: str = "success_auc") -> str:
    width = max(len(r.name) for r in runs) + 2
    lines = [f"{key} per attribute", f"{'attribute':<12}{'seqs':>6}" + "".join(f"{r.name:>{width}}" for r in runs)]
    for attribute, entry in table.items():
        values = [entry[r.name][key] if r.name in entry else None for r in runs]
        lines.append(f"{attribute:<12}{entry['sequences']:>6}" + _cells(values, width))
    return "\n".join(lines)


def report_dict(dataset: Dataset, runs: list[RunScores], attributes: dict | None) -> dict:
    return {
        "dataset": dataset.name,
        "protocol": dataset.protocol,
        "sequences": len(next(iter(runs)).per_sequence),
        "runs": {
            r.name: {"folder": r.folder, "overall": r.overall, "curves": r.curves, "per_sequence": r.per_sequence}
            for r in runs
        },
        "attributes": attributes,
    }


def frame_ranges(frames: list[int]) -> str:
    """[3, 4, 5, 9] -> '3-5, 9'."""
    parts, start = [], None
    for i, frame in enumerate(frames):
        if start is None:
            start = frame
        if i + 1 == len(frames) or frames[i + 1] != frame + 1:
            parts.append(str(start) if start == frame else f"{start}-{frame}")
            start = None
    return ", ".join(parts)


def divergent_frames(a: np.ndarray, b: np.ndarray) -> list[int]:
    """Frames where two runs' boxes overlap with IoU < 0.5 (two empty boxes agree)."""
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    iou = box_iou(a, b)
    both_empty = (a[:, 2:].prod(axis=1) == 0) & (b[:, 2:].prod(axis=1) == 0)
    return np.flatnonzero((iou < DIVERGENCE_IOU) & ~both_empty).tolist()


def compare_runs(
    dataset: Dataset, folders: list[Path], sequences: tuple[Sequence, ...], runs: list[RunScores] | None = None
) -> dict:
    """Each folder against the first: divergent frames per sequence, and score differences when scored."""
    names, keys = run_names(folders), metric_keys(dataset)
    comparison = {"baseline": names[0], "metric": keys[0] if runs else None, "runs": {}}
    for index in range(1, len(folders)):
        differences = {}
        for sequence in sequences:
            entry = {"divergent_frames": divergent_frames(
                read_result(folders[0], sequence.name), read_result(folders[index], sequence.name)
            )}
            if runs:
                base = runs[0].per_sequence[sequence.name][keys[0]]
                value = runs[index].per_sequence[sequence.name][keys[0]]
                entry.update(baseline=base, value=value, difference=None if None in (base, value) else value - base)
            differences[sequence.name] = entry
        overall = {k: runs[index].overall[k] - runs[0].overall[k] for k in keys} if runs else None
        comparison["runs"][names[index]] = {"overall_difference": overall, "sequences": differences}
    return comparison


def format_comparison(comparison: dict) -> str:
    key, lines = comparison["metric"], []
    for name, entry in comparison["runs"].items():
        if entry["overall_difference"] is None:
            lines.append(f"{name} vs {comparison['baseline']} (boxes only: no ground truth to score)")
        else:
            overall = ", ".join(f"{k} {v * PERCENT:+.2f}" for k, v in entry["overall_difference"].items())
            lines.append(f"{name} vs {comparison['baseline']}: {overall} (points)")
        changed = [
            (sequence, diff)
            for sequence, diff in sorted(entry["sequences"].items(), key=lambda i: -abs(i[1].get("difference") or 0))
            if diff["divergent_frames"] or diff.get("difference")
        ]
        if not changed:
            lines.append("  no sequence differs")
        for sequence, diff in changed:
            frames = diff["divergent_frames"]
            ranges = f" ({frame_ranges(frames)})" if frames else ""
            score = ""
            if key is not None:
                delta = "-" if diff["difference"] is None else f"{diff['difference'] * PERCENT:+.2f}"
                score = f"{key} {delta}; "
            lines.append(f"  {sequence}: {score}{len(frames)} divergent frames{ranges}")
    return "\n".join(lines)


def pack(dataset: Dataset, folder: Path, server: str, out: Path) -> Path:
    """The zip the GOT-10k or TrackingNet server accepts, from a results folder."""
    if server not in PACKS:
        raise ScoreError(f"unknown --pack {server!r}; use one of {', '.join(PACKS)}")
    folder = Path(folder)
    missing = [s.name for s in dataset.sequences if not result_path(folder, s.name).is_file()]
    if missing:
        raise ScoreError(
            f"{folder} lacks {len(missing)} sequences ({', '.join(missing[:SHOWN_MISSING])}); "
            "the server wants all of them, finish the run first"
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for sequence in dataset.sequences:
            boxes = result_path(folder, sequence.name)
            if server == "got10k":
                archive.write(boxes, f"{sequence.name}/{sequence.name}_001.txt")
                times = time_path(folder, sequence.name)
                if times.is_file():
                    archive.write(times, f"{sequence.name}/{sequence.name}_time.txt")
            else:
                archive.write(boxes, f"{sequence.name}.txt")
    tmp.replace(out)
    return out


def score_track(track: Path, groundtruth: Path, absent: Path | None = None) -> str:
    """One track.txt against its ground truth, as one line of the published metrics (`eval.py sequence`).

    With `absent` (0/1 flags per frame, e.g. LaSOT's full_occlusion.txt) the frames flagged 1 are scored by
    LaSOT's rules; without it every frame is visible. Raises DatasetError or MetricError on bad files.
    """
    truth = read_boxes(groundtruth)
    visible = None if absent is None else read_flags(absent) == 0
    if visible is not None and len(visible) != len(truth):
        raise MetricError(f"{absent} has {len(visible)} flags for {len(truth)} frames")
    curves = sequence_curves(read_boxes(track), truth, PROTOCOL_GENERIC if visible is None else PROTOCOL_LASOT, visible)
    scores = curve_scores(curves)
    overlap = "-" if curves.mean_overlap is None else f"{curves.mean_overlap:.3f}"
    return (f"{len(truth)} frames: success AUC {scores['success_auc']:.3f}, precision@20px {scores['precision']:.3f}, "
            f"norm. precision@0.2 {scores['norm_precision']:.3f}, OP50 {scores['op50']:.3f}, mean overlap {overlap}")
