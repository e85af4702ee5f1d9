"""The decision log's record: what the step chose for an object on a frame, with the box track.txt writes."""

from __future__ import annotations

import numpy as np

from app.samurai.decisions import decision_record
from app.samurai.results import FrameResult

IMAGE_SIZE = 128
WIDTH, HEIGHT = 256, 128  # the frame is twice the model input's width: the Kalman box doubles in x


def _result(mask: np.ndarray, present: bool, kf_mean: np.ndarray | None = None) -> FrameResult:
    return FrameResult(7, mask, mask.astype(np.float32), 2, 0.75, 1.5 if present else -3.0, 0.4, present=present,
                       ious=np.array([0.1, 0.75, 0.2, 0.3], np.float32), stable_frames=4, kf_mean=kf_mean,
                       memory_frames=[0, 6])


def test_a_seen_object_is_recorded_with_its_box_and_the_kalman_box_in_frame_pixels() -> None:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[20:31, 40:61] = True
    kf_mean = np.array([64.0, 32.0, 1.0, 20.0, 0, 0, 0, 0])  # centre 64,32, 20 x 20 in model-input pixels
    record = decision_record(3, _result(mask, True, kf_mean), IMAGE_SIZE)
    assert {k: record[k] for k in ("frame", "object", "state", "box", "mask_index", "kf_score", "stable_frames",
                                   "memory_frames")} == {"frame": 7, "object": 3, "state": "tracking",
                                                         "box": [40, 20, 20, 10], "mask_index": 2, "kf_score": 0.4,
                                                         "stable_frames": 4, "memory_frames": [0, 6]}
    assert record["kalman_box"] == [108.0, 22.0, 40.0, 20.0]


def test_a_lost_object_is_recorded_with_track_txt_zero_box() -> None:
    record = decision_record(1, _result(np.zeros((HEIGHT, WIDTH), bool), False), IMAGE_SIZE)
    assert (record["state"], record["box"], record["kalman_box"]) == ("lost", [0, 0, 0, 0], None)
