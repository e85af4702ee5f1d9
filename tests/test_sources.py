from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from app.media.live_sources import CameraSource
from app.media.source_spec import open_source, parse_camera
from app.media.sources import (
    MAX_CONSECUTIVE_READ_FAILURES,
    FolderSource,
    Frame,
    FrameSource,
    SourceError,
    VideoSource,
    natural_key,
)

WIDTH, HEIGHT = 32, 24
FPS = 10.0
# Long enough for a reader thread on a loaded CI machine, short enough to fail fast.
WAIT_S = 5.0
# Largest change JPEG makes to a flat colour, in 8-bit levels.
JPEG_TOLERANCE = 8
# Green and red channels of the fake BGR frames; blue carries the frame number.
GREEN, RED = 100, 200


def _bgr(number: int) -> np.ndarray:
    frame = np.empty((HEIGHT, WIDTH, 3), dtype=np.uint8)
    frame[:] = (number, GREEN, RED)
    return frame


class FakeCapture:
    """Stands in for cv2.VideoCapture: plays `frames` (None: a failed read; an exception: raised), then fails."""

    def __init__(self, frames: list[np.ndarray | None | Exception], *, opened: bool = True, count: int | None = None):
        self.frames = frames
        self.opened = opened
        self.count = len(frames) if count is None else count
        self.reads = 0
        self.released = 0
        self.exhausted = threading.Event()

    def isOpened(self) -> bool:
        return self.opened

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.reads >= len(self.frames):
            self.exhausted.set()
            return False, None
        item = self.frames[self.reads]
        self.reads += 1
        if isinstance(item, Exception):
            raise item
        return item is not None, item

    def release(self) -> None:
        self.released += 1

    def get(self, prop: int) -> float:
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            return float(self.count)
        if prop == cv2.CAP_PROP_FPS:
            return FPS
        if prop == cv2.CAP_PROP_POS_MSEC:
            return (self.reads - 1) * 1000 / FPS
        return 0.0


class EndlessCapture(FakeCapture):
    """A camera that never stops until it is released."""

    READ_INTERVAL_S = 0.001

    def __init__(self) -> None:
        super().__init__([])

    def read(self) -> tuple[bool, np.ndarray | None]:
        time.sleep(self.READ_INTERVAL_S)
        self.reads += 1
        return True, _bgr(self.reads % 256)


def _factory(capture: FakeCapture) -> Callable[[object], FakeCapture]:
    return lambda _device: capture


def _reader_threads() -> list[str]:
    return [thread.name for thread in threading.enumerate() if thread.name.endswith("-reader")]


# --- Frame and spec parsing ---------------------------------------------------------------


@pytest.mark.parametrize(
    "image",
    [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.float32)],
)
def test_frame_rejects_non_rgb_uint8(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"\(H, W, 3\) uint8 RGB"):
        Frame(0, image, 0.0)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("cam0", 0),
        ("cam1", 1),
        ("cam12", 12),
        ("/dev/video0", 0),
        ("/dev/video3", 3),
        ("", None),
        ("cam", None),
        ("cam-1", None),
        ("camera0", None),
        ("0", None),
        ("/dev/video", None),
        ("/dev/video0.mp4", None),
        ("video.mp4", None),
    ],
)
def test_parse_camera(spec: str, expected: int | None) -> None:
    assert parse_camera(spec) == expected


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        ([], []),
        (["10.jpg", "2.jpg", "1.jpg"], ["1.jpg", "2.jpg", "10.jpg"]),
        (["00010.jpg", "00002.jpg"], ["00002.jpg", "00010.jpg"]),
        (["b2.png", "a10.png", "a9.png"], ["a9.png", "a10.png", "b2.png"]),
        (["Frame2.jpg", "frame10.jpg"], ["Frame2.jpg", "frame10.jpg"]),
    ],
)
def test_natural_key(names: list[str], expected: list[str]) -> None:
    assert sorted(names, key=natural_key) == expected


@pytest.mark.parametrize("spec", ["", "  ", "missing.mp4", "missing_dir/"])
def test_open_source_rejects_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SourceError) as info:
        open_source(spec)
    message = str(info.value)
    assert "\n" not in message and "video file" in message and "cam0" in message


# --- Folder -------------------------------------------------------------------------------


def _write_frames(folder: Path, names: list[str]) -> None:
    """Frame i is a flat image of red value 10 * i (PNG keeps it exact)."""
    folder.mkdir(parents=True, exist_ok=True)
    for number, name in enumerate(names):
        Image.new("RGB", (WIDTH, HEIGHT), (10 * number, GREEN, RED)).save(folder / name)


def test_folder_orders_naturally_and_ignores_other_files(tmp_path: Path) -> None:
    _write_frames(tmp_path, ["1.png", "2.png", "10.png"])
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / "3.png.d").mkdir()
    with open_source(str(tmp_path)) as source:
        assert isinstance(source, FolderSource)
        assert (source.num_frames, source.size, source.is_live) == (3, (WIDTH, HEIGHT), False)
        frames = list(source)
    assert [frame.index for frame in frames] == [0, 1, 2]
    assert [int(frame.image[0, 0, 0]) for frame in frames] == [0, 10, 20]
    assert [frame.timestamp for frame in frames] == pytest.approx([0, 1 / source.fps, 2 / source.fps])


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".JPG", ".png", ".PNG"])
def test_folder_reads_every_image_suffix_as_rgb(tmp_path: Path, suffix: str) -> None:
    _write_frames(tmp_path, [f"00000{suffix}"])
    with FolderSource(tmp_path, fps=FPS) as source:
        (frame,) = list(source)
    assert frame.image.shape == (HEIGHT, WIDTH, 3) and frame.image.dtype == np.uint8
    # JPEG moves a flat colour by a few levels; a channel swap would move it by 200.
    np.testing.assert_allclose(frame.image[0, 0], (0, GREEN, RED), atol=JPEG_TOLERANCE)


def test_folder_converts_grayscale_to_rgb(tmp_path: Path) -> None:
    Image.new("L", (WIDTH, HEIGHT), 77).save(tmp_path / "0.png")
    with FolderSource(tmp_path) as source:
        (frame,) = list(source)
    assert frame.image.shape == (HEIGHT, WIDTH, 3)
    assert np.all(frame.image == 77)


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00not an image\xff" * 16)


def _truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize("damage", [_garbage, _truncated, _empty])
def test_folder_skips_corrupt_frame_and_keeps_indices(
    tmp_path: Path, warnings: list[str], damage: Callable[[Path], None]
) -> None:
    names = [f"{number:05d}.jpg" for number in range(5)]
    _write_frames(tmp_path, names)
    # A noisy image so that half of its JPEG bytes stops inside the scan data.
    noisy = np.random.default_rng(0).integers(0, 256, (HEIGHT * 4, WIDTH * 4, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(tmp_path / "00003.jpg")
    damage(tmp_path / "00003.jpg")
    with FolderSource(tmp_path) as source:
        assert source.num_frames == 5
        frames = list(source)
    assert [frame.index for frame in frames] == [0, 1, 2, 4]
    assert len(warnings) == 1 and "00003.jpg" in warnings[0] and "skipped" in warnings[0]


def test_folder_size_comes_from_first_readable_frame(tmp_path: Path, warnings: list[str]) -> None:
    _write_frames(tmp_path, ["0.png", "1.png"])
    _garbage(tmp_path / "0.png")
    with FolderSource(tmp_path) as source:
        assert source.size == (WIDTH, HEIGHT)
        assert [frame.index for frame in source] == [1]
    assert len(warnings) == 1


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ([], "no .jpg/.jpeg/.png frames"),
        (["notes.txt", "clip.mp4"], "no .jpg/.jpeg/.png frames"),
        (["0.jpg", "1.png"], "no frame in folder"),
    ],
)
def test_folder_rejects_folder_without_frames(tmp_path: Path, files: list[str], message: str) -> None:
    for name in files:
        _garbage(tmp_path / name)
    with pytest.raises(SourceError, match=message) as info:
        open_source(str(tmp_path))
    assert str(tmp_path) in str(info.value)


@pytest.mark.parametrize("fps", [0.0, -FPS])
def test_folder_rejects_bad_fps(tmp_path: Path, fps: float) -> None:
    _write_frames(tmp_path, ["0.png"])
    with pytest.raises(SourceError, match="must be > 0"):
        FolderSource(tmp_path, fps=fps)


# --- Video file ---------------------------------------------------------------------------


@pytest.mark.parametrize("frames", [1, 5])
def test_video_file_reads_rgb_frames(tmp_path: Path, frames: int) -> None:
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (WIDTH, HEIGHT))
    for number in range(frames):
        writer.write(_bgr(number))
    writer.release()
    with open_source(str(path)) as source:
        assert isinstance(source, VideoSource)
        assert (source.num_frames, source.fps, source.size, source.is_live) == (frames, FPS, (WIDTH, HEIGHT), False)
        read = list(source)
    assert [frame.index for frame in read] == list(range(frames))
    assert [frame.timestamp for frame in read] == pytest.approx([number / FPS for number in range(frames)])
    for frame in read:
        assert frame.image.shape == (HEIGHT, WIDTH, 3)
        # The file holds BGR (blue small, red large); the source must hand out RGB.
        assert frame.image[..., 0].mean() > frame.image[..., 2].mean()


def test_video_file_that_is_not_a_video(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    _garbage(path)
    with pytest.raises(SourceError, match="cannot open video") as info:
        open_source(str(path))
    assert str(path) in str(info.value) and "ffmpeg" in str(info.value)


@pytest.mark.parametrize(
    ("frames", "count", "indices", "warned"),
    [
        ([0, 1, 2], None, [0, 1, 2], []),
        ([0, 1, None, 3], None, [0, 1, 3], ["frame 2 of video"]),
        ([None, 1, 2], None, [1, 2], ["frame 0 of video"]),
        ([0, None, None, 3], None, [0, 3], ["frame 1 of", "frame 2 of"]),
        ([0, 1, None], None, [0, 1], ["ended at frame 2 but its header reports 3"]),
        ([0, 1], 5, [0, 1], ["ended at frame 2 but its header reports 5"]),
        ([0, None, 2], 0, [0], []),
        ([0] + [None] * (MAX_CONSECUTIVE_READ_FAILURES + 1) + [0], 100, [0], ["ended at frame 1"]),
        (
            [0] + [None] * (MAX_CONSECUTIVE_READ_FAILURES - 1) + [0],
            None,
            [0, MAX_CONSECUTIVE_READ_FAILURES],
            [f"frame {number} of video" for number in range(1, MAX_CONSECUTIVE_READ_FAILURES)],
        ),
    ],
)
def test_video_skips_unreadable_frames(
    tmp_path: Path,
    warnings: list[str],
    frames: list[int | None],
    count: int | None,
    indices: list[int],
    warned: list[str],
) -> None:
    path = tmp_path / "clip.mp4"
    path.touch()
    capture = FakeCapture([None if number is None else _bgr(number) for number in frames], count=count)
    with VideoSource(path, capture_factory=_factory(capture)) as source:
        assert source.size == (WIDTH, HEIGHT)
        read = list(source)
        assert list(source) == [], "an ended video stays ended"
    assert [frame.index for frame in read] == indices
    assert len(warnings) == len(warned)
    for message, expected in zip(warnings, warned):
        assert expected in message
    assert capture.released == 1


@pytest.mark.parametrize(
    ("capture", "message"),
    [
        (FakeCapture([_bgr(0)], opened=False), "cannot open video"),
        (FakeCapture([]), "no decodable frame"),
        (FakeCapture([None, None]), "no decodable frame"),
    ],
)
def test_video_rejects_and_releases(tmp_path: Path, capture: FakeCapture, message: str) -> None:
    path = tmp_path / "clip.mp4"
    path.touch()
    with pytest.raises(SourceError, match=message):
        VideoSource(path, capture_factory=_factory(capture))
    assert capture.released == 1


# --- Camera -------------------------------------------------------------------------------


def test_camera_that_does_not_open() -> None:
    capture = FakeCapture([], opened=False)
    with pytest.raises(SourceError) as info:
        CameraSource(3, capture_factory=_factory(capture))
    message = str(info.value)
    assert "camera 3" in message and "ls /dev/video*" in message and "\n" not in message
    assert capture.released == 1


def test_camera_without_a_first_frame() -> None:
    capture = FakeCapture([None])
    with pytest.raises(SourceError, match="camera 1 opened but returned no frame"):
        CameraSource(1, capture_factory=_factory(capture))
    assert capture.released == 1


@pytest.mark.parametrize("frames", [1, 2, 50])
def test_camera_yields_newest_frames_then_ends(frames: int, warnings: list[str]) -> None:
    capture = FakeCapture([_bgr(number) for number in range(frames)])
    with CameraSource(0, capture_factory=_factory(capture)) as source:
        assert (source.num_frames, source.is_live, source.size, source.fps) == (None, True, (WIDTH, HEIGHT), FPS)
        read = list(source)
    indices = [frame.index for frame in read]
    # Which frames a consumer sees depends on timing; the newest is never dropped.
    assert indices == sorted(set(indices)) and indices[-1] == frames - 1
    assert len(read) + source.dropped == frames
    assert all(int(frame.image[0, 0, 2]) == frame.index for frame in read), "RGB order, frame matches index"
    assert any(f"after frame {frames - 1}" in message for message in warnings)
    assert capture.released == 1


def test_camera_keeps_only_newest_frame_for_slow_consumer() -> None:
    frames = 10
    capture = FakeCapture([_bgr(number) for number in range(frames)])
    with CameraSource(0, capture_factory=_factory(capture)) as source:
        assert capture.exhausted.wait(WAIT_S)
        read = list(source)
    assert [frame.index for frame in read] == [frames - 1]
    assert source.dropped == frames - 1


def test_camera_read_error_surfaces_as_source_error() -> None:
    capture = FakeCapture([_bgr(0), _bgr(1), cv2.error("device lost")])
    with CameraSource(2, capture_factory=_factory(capture)) as source:
        with pytest.raises(SourceError, match="camera 2 failed: device lost"):
            for _frame in source:
                pass
    assert capture.released == 1


@pytest.mark.parametrize("stop", [KeyboardInterrupt, RuntimeError])
def test_camera_stops_reader_and_releases_on_interrupt(stop: type[BaseException]) -> None:
    capture = EndlessCapture()
    with pytest.raises(stop):
        with CameraSource(7, capture_factory=_factory(capture)) as source:
            for _frame in source:
                raise stop
    assert "camera7-reader" not in _reader_threads()
    assert capture.released == 1
    reads = capture.reads
    time.sleep(EndlessCapture.READ_INTERVAL_S * 10)
    assert capture.reads == reads, "nothing reads the camera after close"
    source.close()
    assert capture.released == 1, "close() twice releases once"
    assert list(source) == []


# --- Behaviour shared by every source -----------------------------------------------------


def _video(tmp_path: Path) -> tuple[FrameSource, FakeCapture]:
    path = tmp_path / "clip.mp4"
    path.touch()
    capture = FakeCapture([_bgr(number) for number in range(3)])
    return VideoSource(path, capture_factory=_factory(capture)), capture


def _camera(tmp_path: Path) -> tuple[FrameSource, FakeCapture]:
    capture = EndlessCapture()
    return CameraSource(0, capture_factory=_factory(capture)), capture


@pytest.mark.parametrize("make", [_video, _camera])
def test_every_capture_source_releases_once_on_interrupt(
    tmp_path: Path, make: Callable[[Path], tuple[FrameSource, FakeCapture]]
) -> None:
    source, capture = make(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with source:
            next(source)
            raise KeyboardInterrupt
    source.close()
    assert capture.released == 1
    assert _reader_threads() == []
