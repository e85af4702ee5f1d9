"""Frame preprocessing: table normalisation equals the float64 arithmetic bit for bit; every resize choice works."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from app.samurai import preprocess
from app.samurai.config import ConfigError, TrackerConfig, load_config

# SAM 2's ImageNet statistics, as the manifest records them.
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
MODEL_SIZE = 64
# Frame shapes the resizes must handle: shrink, grow, and both at once, odd sizes included.
FRAME_SHAPES = [(360, 640), (1080, 1920), (37, 53), (200, 90)]


def _reference_nchw(resized: np.ndarray, mean=MEAN, std=STD) -> np.ndarray:
    """The official loader's arithmetic (sam2.utils.misc): /255 in float64, stored as float32, then in-place
    float32 subtraction of the mean and division by the std, channel first."""
    image = torch.zeros(1, 3, *resized.shape[:2], dtype=torch.float32)
    image[0] = torch.from_numpy(resized / 255.0).permute(2, 0, 1)
    image -= torch.tensor(mean, dtype=torch.float32)[:, None, None]
    image /= torch.tensor(std, dtype=torch.float32)[:, None, None]
    return image.numpy()


def test_table_equals_float64_path_for_every_value_of_every_channel():
    # Every value in every channel, each channel holding a different permutation.
    rng = np.random.default_rng(0)
    levels = np.stack([rng.permutation(256) for _ in range(3)], axis=-1).astype(np.uint8).reshape(16, 16, 3)
    got = preprocess.Normaliser.for_stats(MEAN, STD)(levels)
    assert got.dtype == np.float32 and got.shape == (1, 3, 16, 16)
    np.testing.assert_array_equal(got.view(np.uint32), _reference_nchw(levels).view(np.uint32))


@pytest.mark.parametrize("shape", [(512, 512), (256, 256), (31, 17)])
def test_table_equals_float64_path_on_random_frames(shape):
    rng = np.random.default_rng(shape[0])
    normalise = preprocess.Normaliser.for_stats(MEAN, STD)
    for _ in range(3):
        frame = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
        got = normalise(frame)
        assert got.flags.c_contiguous
        np.testing.assert_array_equal(got.view(np.uint32), _reference_nchw(frame).view(np.uint32))


def test_table_follows_other_statistics():
    mean, std = np.array([0.5, 0.25, 0.0], np.float32), np.array([0.5, 1.0, 0.125], np.float32)
    frame = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    got = preprocess.Normaliser.for_stats(mean, std)(frame)
    np.testing.assert_array_equal(got, _reference_nchw(frame, mean, std))


@pytest.mark.parametrize("shape", FRAME_SHAPES)
@pytest.mark.parametrize("resize", list(preprocess.RESIZES))
def test_every_resize_gives_the_model_input(resize, shape):
    frame = np.random.default_rng(2).integers(0, 256, (*shape, 3), dtype=np.uint8)
    out = preprocess.resize_frame(frame, MODEL_SIZE, resize)
    assert out.shape == (MODEL_SIZE, MODEL_SIZE, 3) and out.dtype == np.uint8
    # A resize of a smooth ramp stays a ramp: the channels stay in order and the mean stays put.
    ramp = np.broadcast_to(np.linspace(0, 255, shape[1]).astype(np.uint8)[None, :, None], (*shape, 3)).copy()
    resized = preprocess.resize_frame(ramp, MODEL_SIZE, resize).astype(np.int16)
    assert np.all(np.diff(resized[MODEL_SIZE // 2, :, 0]) >= -1)
    assert abs(resized.mean() - ramp.mean()) < 2


def test_default_resize_is_pil_bicubic_exactly():
    frame = np.random.default_rng(3).integers(0, 256, (360, 640, 3), dtype=np.uint8)
    expected = np.asarray(Image.fromarray(frame).resize((MODEL_SIZE, MODEL_SIZE), Image.BICUBIC))
    assert load_config(None, "t").resize == "pil_bicubic"
    np.testing.assert_array_equal(preprocess.resize_frame(frame, MODEL_SIZE, "pil_bicubic"), expected)


def test_reduced_resize_differs_only_where_a_reduction_applies():
    rng = np.random.default_rng(4)
    small = rng.integers(0, 256, (100, 120, 3), dtype=np.uint8)  # under 2x: no integer reduction
    large = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    for frame, same in ((small, True), (large, False)):
        exact = preprocess.resize_frame(frame, MODEL_SIZE, "pil_bicubic")
        reduced = preprocess.resize_frame(frame, MODEL_SIZE, "pil_bicubic_reduced")
        assert np.array_equal(exact, reduced) == same


def test_config_names_the_resize_choices(tmp_path):
    for resize in preprocess.RESIZES:
        assert TrackerConfig(resize=resize).resize == resize
    config = tmp_path / "c.yaml"
    config.write_text("resize: bicubic\n")
    with pytest.raises(ConfigError, match="resize 'bicubic' is not one of pil_bicubic, pil_bicubic_reduced"):
        load_config(config, "t")
