"""Tiny benchmark datasets on disk, in each benchmark's own layout, for the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

FRAME_SIZE = (32, 24)  # width, height of the placeholder frames


def write_frame(path: Path, image: np.ndarray | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if image is None:
        image = np.full((FRAME_SIZE[1], FRAME_SIZE[0], 3), 128, np.uint8)
    Image.fromarray(image).save(path, quality=95)


def box_lines(boxes: np.ndarray, separator: str = ",") -> str:
    return "".join(separator.join(f"{v:g}" for v in box) + "\n" for box in boxes)


def write_text(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def lasot(root: Path, sequences: dict[str, np.ndarray], images: dict[str, list[np.ndarray]] | None = None,
          occluded: dict[str, list[int]] | None = None, out_of_view: dict[str, list[int]] | None = None,
          testing_set: bool = True) -> Path:
    """class/class-N/{img/%08d.jpg, groundtruth.txt, full_occlusion.txt, out_of_view.txt} [+ testing_set.txt]."""
    for name, boxes in sequences.items():
        folder = root / name.rsplit("-", 1)[0] / name
        write_text(folder / "groundtruth.txt", box_lines(boxes))
        for file_name, flags in (("full_occlusion.txt", occluded), ("out_of_view.txt", out_of_view)):
            values = (flags or {}).get(name, [0] * len(boxes))
            write_text(folder / file_name, ",".join(map(str, values)) + "\n")
        for i in range(len(boxes)):
            write_frame(folder / "img" / f"{i + 1:08d}.jpg", (images or {}).get(name, [None] * len(boxes))[i])
    if testing_set:
        write_text(root / "testing_set.txt", "".join(f"{n}\n" for n in sequences))
    return root


def got10k(root: Path, split: str, sequences: dict[str, np.ndarray], covers: dict[str, list[int]] | None = None,
           resolution: tuple[int, int] = FRAME_SIZE, frames: dict[str, int] | None = None) -> Path:
    """split/list.txt, split/seq/{%08d.jpg, groundtruth.txt, cover.label, meta_info.ini}."""
    base = root / split
    write_text(base / "list.txt", "".join(f"{n}\n" for n in sequences))
    for name, boxes in sequences.items():
        folder = base / name
        write_text(folder / "groundtruth.txt", box_lines(boxes))
        count = (frames or {}).get(name, len(boxes))
        for i in range(count):
            write_frame(folder / f"{i + 1:08d}.jpg")
        if covers is not None:
            write_text(folder / "cover.label", "".join(f"{c}\n" for c in covers[name]))
        write_text(folder / "meta_info.ini", "[METAINFO]\nurl: https://example.org/v?id=a%20b\nmajor_class: animal\n"
                   f"resolution: ({resolution[0]}, {resolution[1]})\nanno_fps: 10Hz\n")
    return root


def otb(root: Path, sequences: dict[str, tuple[np.ndarray, str]], first_frame: dict[str, int] | None = None) -> Path:
    """Seq/img/%04d.jpg and Seq/groundtruth_rect.txt (`Seq_K` names write groundtruth_rect.K.txt)."""
    for name, (boxes, separator) in sequences.items():
        folder_name, _, target = name.partition("_")
        folder = root / folder_name
        file_name = f"groundtruth_rect.{target}.txt" if target else "groundtruth_rect.txt"
        write_text(folder / file_name, box_lines(boxes, separator))
        start = (first_frame or {}).get(name, 1)
        for i in range(len(boxes)):
            write_frame(folder / "img" / f"{start + i:04d}.jpg")
    return root


def nfs(root: Path, sequences: dict[str, np.ndarray]) -> Path:
    """sequences/seq/%05d.jpg and anno/nfs_seq.txt (the 30 FPS version)."""
    for name, boxes in sequences.items():
        write_text(root / "anno" / f"nfs_{name}.txt", box_lines(boxes, " "))
        for i in range(len(boxes)):
            write_frame(root / "sequences" / name / f"{i + 1:05d}.jpg")
    return root


def uav123(root: Path, sequences: dict[str, np.ndarray]) -> Path:
    """data_seq/UAV123/seq/%06d.jpg and anno/UAV123/seq.txt (NaN lines where the target is absent)."""
    for name, boxes in sequences.items():
        write_text(root / "anno" / "UAV123" / f"{name}.txt", box_lines(boxes).replace("nan", "NaN"))
        for i in range(len(boxes)):
            write_frame(root / "data_seq" / "UAV123" / name / f"{i + 1:06d}.jpg")
    return root


def trackingnet(root: Path, sequences: dict[str, tuple[np.ndarray, int]]) -> Path:
    """TEST/frames/seq/N.jpg (from 0) and TEST/anno/seq.txt (the first box only on the test set)."""
    for name, (boxes, count) in sequences.items():
        write_text(root / "TEST" / "anno" / f"{name}.txt", box_lines(boxes))
        for i in range(count):
            write_frame(root / "TEST" / "frames" / name / f"{i}.jpg")
    return root
