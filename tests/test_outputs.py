from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from app.media.drawing import annotate
from app.media.outputs import (
    MASK_ON,
    DecisionLog,
    LabelMaskWriter,
    LiveTrackWriter,
    MaskWriter,
    TrackWriter,
    davis_palette,
    write_summary,
)
from app.media.video_file import VideoWriter
from app.samurai.results import FrameResult

WIDTH, HEIGHT = 64, 48
FPS = 10.0


def _mask(shape: tuple[int, int], *regions: tuple[slice, slice]) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    for region in regions:
        mask[region] = True
    return mask


def _count_frames(path: Path) -> int:
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"{path} does not open"
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count


def test_track_writer_flushes_each_line(tmp_path: Path) -> None:
    with TrackWriter(tmp_path) as writer:
        writer.write(0, (1, 2, 3, 4))
        assert (tmp_path / "track.txt").read_text() == "1,2,3,4\n"
        writer.write(1, (1.4, 2.6, 3.5, 0))
        assert (tmp_path / "track.txt").read_text() == "1,2,3,4\n1,3,4,0\n"


@pytest.mark.parametrize(
    ("indices", "expected"),
    [
        ([], ""),
        ([0], "5,6,7,8\n"),
        ([0, 1, 2], "5,6,7,8\n" * 3),
        ([0, 3], "5,6,7,8\n0,0,0,0\n0,0,0,0\n5,6,7,8\n"),
        ([2], "0,0,0,0\n0,0,0,0\n5,6,7,8\n"),
        ([1, 3], "0,0,0,0\n5,6,7,8\n0,0,0,0\n5,6,7,8\n"),
    ],
)
def test_track_writer_keeps_line_n_for_frame_n(tmp_path: Path, indices: list[int], expected: str) -> None:
    with TrackWriter(tmp_path) as writer:
        for index in indices:
            writer.write(index, (5, 6, 7, 8))
    assert (tmp_path / "track.txt").read_text() == expected


def test_track_writer_writes_a_result_without_a_box_as_zeros(tmp_path: Path) -> None:
    with TrackWriter(tmp_path) as writer, LiveTrackWriter(tmp_path / "live") as live:
        writer.write(0, (1, 2, 3, 4))
        writer.write(1, None)
        live.write(4, None, 0.5)
    assert (tmp_path / "track.txt").read_text() == "1,2,3,4\n0,0,0,0\n"
    assert (tmp_path / "live" / "track.txt").read_text() == "0,0,0,0\n"


def test_track_writer_rejects_bad_input(tmp_path: Path) -> None:
    with TrackWriter(tmp_path) as writer:
        writer.write(1, (1, 2, 3, 4))
        with pytest.raises(ValueError, match="in order"):
            writer.write(1, (1, 2, 3, 4))
        with pytest.raises(ValueError, match="4 values"):
            writer.write(2, (1, 2, 3))


def test_track_writer_interrupted_keeps_lines(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with TrackWriter(tmp_path / "run") as writer:
            for index in range(3):
                writer.write(index, (index, index, 10, 10))
            raise KeyboardInterrupt
    assert (tmp_path / "run" / "track.txt").read_text().splitlines() == ["0,0,10,10", "1,1,10,10", "2,2,10,10"]
    writer.close()


@pytest.mark.parametrize(
    "mask",
    [
        _mask((HEIGHT, WIDTH)),
        _mask((HEIGHT, WIDTH), (slice(10, 20), slice(5, 30))),
        _mask((HEIGHT, WIDTH), (slice(None), slice(None))),
    ],
)
def test_mask_writer_writes_8bit_single_channel(tmp_path: Path, mask: np.ndarray) -> None:
    with MaskWriter(tmp_path) as writer:
        path = writer.write(7, mask)
    assert path == tmp_path / "masks" / "00007.png"
    assert sorted(p.name for p in path.parent.iterdir()) == ["00007.png"]
    with Image.open(path) as image:
        assert image.mode == "L"
        pixels = np.asarray(image)
    np.testing.assert_array_equal(pixels, np.where(mask, MASK_ON, 0).astype(np.uint8))


def test_mask_writer_names_by_index(tmp_path: Path) -> None:
    with MaskWriter(tmp_path) as writer:
        for index in (0, 2, 123456):
            writer.write(index, _mask((2, 2)))
    assert sorted(p.name for p in (tmp_path / "masks").iterdir()) == ["00000.png", "00002.png", "123456.png"]


def test_mask_writer_rejects_logits(tmp_path: Path) -> None:
    with MaskWriter(tmp_path) as writer, pytest.raises(ValueError, match="logits > 0"):
        writer.write(0, np.zeros((2, 2), dtype=np.float32))


def _rgb(value: int) -> np.ndarray:
    return np.full((HEIGHT, WIDTH, 3), value, dtype=np.uint8)


@pytest.mark.parametrize("frames", [1, 5])
def test_video_writer_writes_playable_mp4(tmp_path: Path, frames: int) -> None:
    with VideoWriter(tmp_path, FPS, (WIDTH, HEIGHT)) as writer:
        for index in range(frames):
            mask = _mask((HEIGHT, WIDTH), (slice(0, 10), slice(0, 10)), (slice(20, 31), slice(20, 31)))
            writer.write(annotate(_rgb(index * 40), {1: FrameResult(index, mask, mask, 0, 1.0, 1.0, None)}))
    path = tmp_path / "track.mp4"
    assert _count_frames(path) == frames
    capture = cv2.VideoCapture(str(path))
    assert (capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (WIDTH, HEIGHT)
    capture.release()


def test_video_writer_interrupted_leaves_playable_mp4(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        with VideoWriter(tmp_path, FPS, (WIDTH, HEIGHT)) as writer:
            for index in range(4):
                writer.write(_rgb(index * 50))
            raise KeyboardInterrupt
    assert _count_frames(tmp_path / "track.mp4") == 4
    writer.close()


def test_video_writer_without_frames_leaves_no_file(tmp_path: Path, warnings: list[str]) -> None:
    with VideoWriter(tmp_path, FPS, (WIDTH, HEIGHT)):
        pass
    assert not (tmp_path / "track.mp4").exists()
    assert any("no frames" in message for message in warnings)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((HEIGHT, WIDTH + 1, 3), dtype=np.uint8),
        np.zeros((HEIGHT, WIDTH), dtype=np.uint8),
        np.zeros((HEIGHT, WIDTH, 3), dtype=np.float32),
    ],
)
def test_video_writer_rejects_wrong_frames(tmp_path: Path, image: np.ndarray) -> None:
    with VideoWriter(tmp_path, FPS, (WIDTH, HEIGHT)) as writer:
        writer.write(_rgb(0))
        with pytest.raises(ValueError, match=f"\\({HEIGHT}, {WIDTH}, 3\\) uint8"):
            writer.write(image)
    assert _count_frames(tmp_path / "track.mp4") == 1


@pytest.mark.parametrize("fps", [0.0, -1.0])
def test_video_writer_rejects_bad_fps(tmp_path: Path, fps: float) -> None:
    with pytest.raises(ValueError, match="frame rate"):
        VideoWriter(tmp_path, fps, (WIDTH, HEIGHT))


@pytest.mark.parametrize(
    ("summary", "expected"),
    [
        ({}, {}),
        ({"frames": 3, "fps": 12.5, "source": "cam0"}, {"frames": 3, "fps": 12.5, "source": "cam0"}),
        (
            {"frames": np.int64(3), "ms": np.float32(1.5), "box": np.array([1, 2]), "out": Path("a/b")},
            {"frames": 3, "ms": 1.5, "box": [1, 2], "out": "a/b"},
        ),
    ],
)
def test_write_summary_round_trips(tmp_path: Path, summary: dict, expected: dict) -> None:
    path = tmp_path / "out" / "summary.json"
    write_summary(path, summary)
    assert json.loads(path.read_text()) == expected
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"]


def test_write_summary_rejects_unserialisable_and_keeps_old_file(tmp_path: Path) -> None:
    path = tmp_path / "summary.json"
    write_summary(path, {"frames": 1})
    with pytest.raises(TypeError, match="not JSON serialisable"):
        write_summary(path, {"frames": object()})
    assert json.loads(path.read_text()) == {"frames": 1}


def test_davis_palette() -> None:
    palette = davis_palette()
    assert palette.shape == (256, 3) and palette.dtype == np.uint8
    assert palette[:5].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
    assert palette[255].tolist() == [224, 224, 192]
    assert len({tuple(c) for c in palette.tolist()}) == 256


@pytest.mark.parametrize("ids", [[1, 2], [2, 1], [3, 7, 255]])
def test_label_masks_are_indexed_pngs_smaller_id_on_top(tmp_path, ids) -> None:
    masks = {}
    for k, obj_id in enumerate(ids):
        mask = np.zeros((HEIGHT, WIDTH), bool)
        mask[2 : 6 + 2 * k, 3 : 9 + 2 * k] = True
        masks[obj_id] = mask
    with LabelMaskWriter(tmp_path) as writer:
        path = writer.write(7, masks)
    assert path.name == "00007.png"
    image = Image.open(path)
    labels = np.asarray(image)
    assert image.mode == "P" and image.getpalette()[3:6] == [128, 0, 0]
    expected = np.zeros((HEIGHT, WIDTH), np.uint8)
    for obj_id in sorted(masks, reverse=True):
        expected[masks[obj_id]] = obj_id
    assert np.array_equal(labels, expected) and labels[2, 3] == min(ids)


@pytest.mark.parametrize("masks, message", [({}, "no object mask"), ({256: np.zeros((2, 2), bool)}, "ids 1..255")])
def test_label_masks_refuse_what_does_not_fit(tmp_path, masks, message) -> None:
    with LabelMaskWriter(tmp_path) as writer, pytest.raises(ValueError, match=message):
        writer.write(0, masks)


def test_decision_log_writes_whole_lines(tmp_path) -> None:
    with DecisionLog(tmp_path / "sub" / "log.jsonl") as log:
        log.write({"frame": 0, "ious": np.array([0.5, 0.25], np.float32)})
        log.write({"frame": 1, "kalman_box": None})
    lines = (tmp_path / "sub" / "log.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [{"frame": 0, "ious": [0.5, 0.25]}, {"frame": 1, "kalman_box": None}]


def test_live_track_writer_tells_a_dropped_frame_from_a_lost_object(tmp_path):
    with LiveTrackWriter(tmp_path) as writer:
        writer.write(3, (10, 20, 30, 40), 0.1)
        writer.write(7, (0, 0, 0, 0), 0.2333)  # frames 4-6 dropped by the source; the object lost on 7
        writer.write(8, (11.6, 20, 30, 40), 0.2667)
        with pytest.raises(ValueError, match="in order"):
            writer.write(8, (1, 1, 1, 1), 0.3)
    assert (tmp_path / "track.txt").read_text() == "10,20,30,40\n0,0,0,0\n12,20,30,40\n"
    assert (tmp_path / "frames.txt").read_text() == "3,0.100\n7,0.233\n8,0.267\n"
    with LiveTrackWriter(tmp_path, "track_2.txt") as writer:
        writer.write(0, (1, 2, 3, 4), 0.0)
    assert (tmp_path / "frames_2.txt").read_text() == "0,0.000\n"
