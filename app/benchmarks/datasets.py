"""Readers for the standard tracking benchmarks in the layouts their downloads unpack to.

Each reader turns a dataset root into `Sequence`s: frame paths in order, the
ground-truth boxes (x, y, w, h, one row per frame; only the first row on the
test splits whose annotations are withheld) and whatever per-frame flags the
dataset ships for scoring. Nothing is decoded here: an unreadable frame is
found, and reported, when a run reaches it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from loguru import logger

from app.benchmarks.frame_ranges import OTB_DIGITS, OTB_RANGES, UAV_DIGITS, UAV_SPLITS, FrameRange
from app.media.sources import natural_key

# How a dataset's frames are scored (see app.benchmarks.metrics).
PROTOCOL_LASOT = "lasot"  # pytracking's LaSOT rules: invisible frames fail every measure
PROTOCOL_UAV = "uav"  # NaN annotations allowed; invalid frames count as within any centre threshold
PROTOCOL_GENERIC = "generic"
PROTOCOL_GOT10K = "got10k"  # the official got10k toolkit

BOX_VALUES = 4
_SEPARATORS = re.compile(r"[,\s]+")
LASOT_DIGITS = 8
GOT10K_IMAGE_GLOB = "*.jpg"
NFS_DIGITS = 5
# Attribute names in the order of the flags in each sequence's attribute file.
LASOT_ATTRIBUTES = ("IV", "POC", "DEF", "MB", "CM", "ROT", "BC", "VC", "SV", "FOC", "FM", "OV", "LR", "ARC")
OTB_ATTRIBUTES = ("IV", "SV", "OCC", "DEF", "MB", "FM", "IPR", "OPR", "OV", "BC", "LR")
ATTRIBUTE_FOLDER = "att"


class DatasetError(ValueError):
    """A dataset root or annotation file that cannot be read; the one-line message says what to fix."""


@dataclass(frozen=True)
class Sequence:
    name: str
    frames: tuple[Path, ...]
    ground_truth: np.ndarray  # (N, 4) x, y, w, h; (1, 4) where only the first box is public
    visible: np.ndarray | None = None  # (N,) bool: not fully occluded and not out of view (LaSOT)
    cover: np.ndarray | None = None  # (N,) GOT-10k visible-ratio labels, 0 = target absent
    resolution: tuple[int, int] | None = None  # (width, height), GOT-10k meta_info.ini

    @property
    def first_box(self) -> np.ndarray:
        return self.ground_truth[0]

    @property
    def scorable(self) -> bool:
        return len(self.ground_truth) > 1


@dataclass(frozen=True)
class Dataset:
    name: str
    root: Path
    protocol: str
    sequences: tuple[Sequence, ...]
    attribute_names: tuple[str, ...] = ()

    @property
    def scorable(self) -> bool:
        """Every sequence has a box for every frame (test splits scored by a server have only the first)."""
        return all(s.scorable for s in self.sequences)

    def select(self, names: list[str]) -> Dataset:
        known = {s.name: s for s in self.sequences}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise DatasetError(
                f"{self.name} at {self.root} has no sequence {', '.join(unknown)}; "
                f"names look like {', '.join(list(known)[:3])}"
            )
        return Dataset(self.name, self.root, self.protocol, tuple(known[n] for n in names), self.attribute_names)


def read_boxes(path: Path) -> np.ndarray:
    """(N, 4) boxes from a text file whose values are separated by commas, tabs or spaces (NaN allowed)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"annotation file {path} not found; check that the dataset was unpacked completely")
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        values = [v for v in _SEPARATORS.split(line.strip()) if v]
        if not values:
            continue
        if len(values) != BOX_VALUES:
            raise DatasetError(f"{path} line {number} has {len(values)} values, expected x,y,w,h")
        try:
            rows.append([float(v) for v in values])
        except ValueError:
            raise DatasetError(f"{path} line {number} is not numeric: {line.strip()!r}") from None
    if not rows:
        raise DatasetError(f"{path} has no box; it should hold one x,y,w,h line per frame")
    return np.array(rows, dtype=np.float64)


def read_flags(path: Path) -> np.ndarray:
    """Per-frame integer labels from a file of comma-, space- or newline-separated values."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"annotation file {path} not found; check that the dataset was unpacked completely")
    values = [v for v in _SEPARATORS.split(path.read_text().strip()) if v]
    try:
        return np.array([int(float(v)) for v in values], dtype=np.int64)
    except ValueError:
        raise DatasetError(f"{path} holds a non-numeric label; it should hold one 0/1 value per frame") from None


def _numbered_frames(folder: Path, first: int, count: int, digits: int) -> tuple[Path, ...]:
    return tuple(folder / f"{number:0{digits}d}.jpg" for number in range(first, first + count))


def _listed_frames(folder: Path) -> tuple[Path, ...]:
    return tuple(sorted(folder.glob(GOT10K_IMAGE_GLOB), key=lambda p: natural_key(p.name)))


def _require_dir(root: Path, what: str) -> Path:
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} is not a folder; pass --root the folder that holds {what}")
    return root


def _lasot(root: Path, name: str) -> Dataset:
    _require_dir(root, "the class folders (airplane/airplane-1/img, ...)")
    listing = root / "testing_set.txt"
    if listing.is_file():
        names = [line.strip() for line in listing.read_text().splitlines() if line.strip()]
        folders = [root / n.rsplit("-", 1)[0] / n for n in names]
    else:
        folders = sorted((p.parent for p in root.glob("*/*/groundtruth.txt")), key=lambda p: natural_key(p.name))
    if not folders:
        raise DatasetError(
            f"{root} holds no LaSOT sequence (class/class-N/groundtruth.txt); pass --root the LaSOT folder"
        )
    sequences = []
    for folder in folders:
        truth = read_boxes(folder / "groundtruth.txt")
        occluded = read_flags(folder / "full_occlusion.txt")
        out_of_view = read_flags(folder / "out_of_view.txt")
        if not len(occluded) == len(out_of_view) == len(truth):
            raise DatasetError(
                f"{folder}: groundtruth.txt has {len(truth)} lines but full_occlusion.txt {len(occluded)} "
                f"and out_of_view.txt {len(out_of_view)} flags; re-extract the sequence"
            )
        frames = _numbered_frames(folder / "img", 1, len(truth), LASOT_DIGITS)
        sequences.append(Sequence(folder.name, frames, truth, visible=(occluded == 0) & (out_of_view == 0)))
    return Dataset(name, root, PROTOCOL_LASOT if name == "lasot" else PROTOCOL_GENERIC, tuple(sequences),
                   LASOT_ATTRIBUTES)


_RESOLUTION = re.compile(r"^resolution:\s*\(\s*(\d+)\s*,\s*(\d+)\s*\)", re.MULTILINE)


def _got10k_meta(folder: Path) -> tuple[int, int] | None:
    """(width, height) from meta_info.ini's `resolution: (W, H)` line (free text elsewhere in the file)."""
    path = folder / "meta_info.ini"
    match = _RESOLUTION.search(path.read_text(errors="replace")) if path.is_file() else None
    return (int(match[1]), int(match[2])) if match else None


def _got10k(root: Path, split: str) -> Dataset:
    _require_dir(root, "GOT-10k's val/ and test/ folders (or one split folder with list.txt)")
    base = root if (root / "list.txt").is_file() else root / split
    listing = base / "list.txt"
    if not listing.is_file():
        raise DatasetError(f"{listing} not found; pass --root the GOT-10k folder holding {split}/list.txt")
    sequences = []
    for name in (line.strip() for line in listing.read_text().splitlines()):
        if not name:
            continue
        folder = base / name
        truth = read_boxes(folder / "groundtruth.txt")
        cover_file = folder / "cover.label"
        cover = read_flags(cover_file) if cover_file.is_file() else None
        sequences.append(Sequence(name, _listed_frames(folder), truth, cover=cover, resolution=_got10k_meta(folder)))
    return Dataset("got10k", root, PROTOCOL_GOT10K, tuple(sequences))


def _otb_annotations(folder: Path) -> list[tuple[str, Path]]:
    """(sequence name, annotation file) per target in an OTB sequence folder."""
    numbered = sorted(folder.glob("groundtruth_rect.*.txt"))
    if numbered:
        return [(f"{folder.name}_{p.name.split('.')[1]}", p) for p in numbered]
    for file_name in ("groundtruth_rect.txt", "groundtruth.txt"):
        if (folder / file_name).is_file():
            return [(folder.name, folder / file_name)]
    return []


def _ranged_frames(name: str, folder: Path, truth: np.ndarray, frame_range: FrameRange) -> tuple[tuple, np.ndarray]:
    truth = truth[frame_range.skip:]
    first = frame_range.start + frame_range.skip
    count = frame_range.end - first + 1
    if count != len(truth):
        logger.warning("{}: frames {}-{} but {} annotated boxes; using the shorter", name, first,
                       frame_range.end, len(truth))
        count = min(count, len(truth))
    return _numbered_frames(folder, first, count, frame_range.digits), truth[:count]


def _otb(root: Path) -> Dataset:
    _require_dir(root, "the OTB sequence folders (Basketball/img, Basketball/groundtruth_rect.txt, ...)")
    sequences = []
    for folder in sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name)):
        for name, annotation in _otb_annotations(folder):
            truth = read_boxes(annotation)
            frame_range = OTB_RANGES.get(name, OTB_RANGES.get(folder.name, FrameRange(1, len(truth), OTB_DIGITS)))
            frames, truth = _ranged_frames(name, folder / "img", truth, frame_range)
            sequences.append(Sequence(name, frames, truth))
    if not sequences:
        raise DatasetError(f"{root} holds no OTB sequence (Seq/img and Seq/groundtruth_rect.txt); check --root")
    return Dataset("otb", root, PROTOCOL_GENERIC, tuple(sequences), OTB_ATTRIBUTES)


def _nfs(root: Path) -> Dataset:
    _require_dir(root, "NFS's sequences/ and anno/ folders (30 FPS)")
    annotations = sorted((root / "anno").glob("nfs_*.txt"), key=lambda p: natural_key(p.name))
    if not annotations:
        raise DatasetError(f"{root / 'anno'} holds no nfs_<sequence>.txt; pass --root the NFS 30 FPS folder")
    sequences = []
    for annotation in annotations:
        name = annotation.stem[len("nfs_"):]
        truth = read_boxes(annotation)
        sequences.append(Sequence(name, _numbered_frames(root / "sequences" / name, 1, len(truth), NFS_DIGITS), truth))
    return Dataset("nfs", root, PROTOCOL_GENERIC, tuple(sequences))


def _uav123(root: Path) -> Dataset:
    _require_dir(root, "UAV123's data_seq/UAV123 and anno/UAV123 folders")
    annotations = sorted((root / "anno" / "UAV123").glob("*.txt"), key=lambda p: natural_key(p.name))
    if not annotations:
        raise DatasetError(f"{root / 'anno' / 'UAV123'} holds no <sequence>.txt; pass --root the UAV123 folder")
    sequences = []
    for annotation in annotations:
        name = annotation.stem
        truth = read_boxes(annotation)
        folder_name, frame_range = UAV_SPLITS.get(name, (name, FrameRange(1, len(truth), UAV_DIGITS)))
        frames, truth = _ranged_frames(name, root / "data_seq" / "UAV123" / folder_name, truth, frame_range)
        sequences.append(Sequence(name, frames, truth))
    return Dataset("uav123", root, PROTOCOL_UAV, tuple(sequences))


def _trackingnet(root: Path) -> Dataset:
    _require_dir(root, "TrackingNet's TEST/frames and TEST/anno folders")
    base = root if (root / "anno").is_dir() else root / "TEST"
    annotations = sorted((base / "anno").glob("*.txt"), key=lambda p: natural_key(p.name))
    if not annotations:
        raise DatasetError(f"{base / 'anno'} holds no <sequence>.txt; pass --root the TrackingNet folder with TEST/")
    sequences = [
        Sequence(a.stem, _listed_frames(base / "frames" / a.stem), read_boxes(a)) for a in annotations
    ]
    return Dataset("trackingnet", root, PROTOCOL_GENERIC, tuple(sequences))


READERS: dict[str, Callable[[Path, str], Dataset]] = {
    "lasot": lambda root, split: _lasot(root, "lasot"),
    "lasot_ext": lambda root, split: _lasot(root, "lasot_ext"),
    "got10k": _got10k,
    "otb": lambda root, split: _otb(root),
    "nfs": lambda root, split: _nfs(root),
    "trackingnet": lambda root, split: _trackingnet(root),
    "uav123": lambda root, split: _uav123(root),
}
DATASETS = tuple(READERS)


def load_dataset(name: str, root: Path, split: str = "val") -> Dataset:
    if name not in READERS:
        raise DatasetError(f"unknown dataset {name!r}; use one of {', '.join(DATASETS)}")
    dataset = READERS[name](Path(root), split)
    if not dataset.sequences:
        raise DatasetError(f"{root} lists no sequence for {name}; check --root")
    return dataset


def load_attributes(dataset: Dataset, folder: Path | None = None) -> dict[str, frozenset[str]] | None:
    """Sequence name -> its attributes, from FOLDER/<sequence>.txt flag files (default ROOT/att).

    None when the dataset has no attributes or the folder is not there; a
    missing or malformed file for one sequence is an error.
    """
    if not dataset.attribute_names:
        return None
    folder = Path(folder) if folder else dataset.root / ATTRIBUTE_FOLDER
    if not folder.is_dir():
        return None
    attributes = {}
    for sequence in dataset.sequences:
        flags = read_flags(folder / f"{sequence.name}.txt")
        if len(flags) != len(dataset.attribute_names):
            raise DatasetError(
                f"{folder / sequence.name}.txt has {len(flags)} flags; {dataset.name} attribute files hold "
                f"{len(dataset.attribute_names)} ({', '.join(dataset.attribute_names)})"
            )
        attributes[sequence.name] = frozenset(a for a, f in zip(dataset.attribute_names, flags) if f)
    return attributes
