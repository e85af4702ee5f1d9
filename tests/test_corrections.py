"""Prompts on tracked frames against the official predictors driven the same way, frame by frame.

Design. The reference is the official `sam2==1.1.0` video predictor (samurai mode: the same with
SAMURAI's rules, `tests/reference_predictor.py`), driven as a stream is: `propagate_in_video` over
frames 0..K, the frame's `add_new_points_or_box` / `remove_object` calls, then propagation from K+1.
The tracker steps frame by frame and calls `apply` with the same prompts after frame K. Every frame
of every object must agree: the low-res logits to LOGIT_ATOL (a wrong memory, pointer, mask prompt or
chosen token moves them far more), and the masks to IoU >= 0.99. A correction is checked to change the
track, so that a tracker ignoring it fails. Random weights (the textured clip) test the numerics of
every prompt kind; the colour checkpoint's distractor clip tests a correction that turns SAM 2 back
from the distractor it jumped to.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from acl_models.bundle import open_bundle_with
from acl_models.onnx_runner import OnnxRunner
from app.benchmarks.metrics import box_iou
from app.media.colour_clip import DISTRACTOR_GAP, TARGET_SIZE
from app.media.colour_clip import make_frames as make_colour_frames
from app.media.textured_clip import write_clip
from app.samurai.boxes import Box
from app.samurai.config import load_config
from app.samurai.multi_tracker import MultiObjectTracker
from app.samurai.prompts import Prompt
from tests.backends import EXACT_BACKEND_PARAMS, exact_factory, mask_iou, models_for
from tests.demo_model import IMAGE_SIZE, TEST_THREADS
from tests.reference_predictor import OFFICIAL_PARAMS, Call, SessionRun, run_official_session
from tests.synthetic import make_frames, read_jpeg_folder, write_jpeg_folder

NUM_FRAMES = 10
WIDTH, HEIGHT = 320, 240  # the generated clip's frames
PROMPT_FRAME = 4
# ONNX Runtime and PyTorch float32 logits differ by ~3e-6 here (memories bfloat16 on both sides); on random
# weights a correction moves the frames after it by 3e-3 and more, so a tracker that ignored it fails at 5e-4.
LOGIT_ATOL = 5e-4
MIN_MASK_IOU = 0.99
# The colour clip: SAM 2 follows the distractor from frame 23 (test_demo.TAKEOVER_FRAME) on; a click on the target
# and one on the distractor at frame 24 put frame 24's mask back on the target (box IoU ~0.9 with the true box; the
# distractor's is 0). The larger distractor wins again on the next frame, in the official predictor as here (the
# colour checkpoint's masks follow the colours, not the memory). SAMURAI, still on the target, keeps it.
DEMO_FRAMES, DEMO_PROMPT_FRAME = 27, 24
ON_TARGET_IOU = 0.8
# After SAMURAI's 15 confident frames, so that the correction's filter update goes through the weighted branch.
KALMAN_PROMPT_FRAME = 20
# SAMURAI's Kalman-weighted choice from the third confident frame, so that the 10-frame clip reaches it before the
# prompt frame and a correction's extra filter update shows in the frames after it.
FAST_KALMAN = {"stable_frames_threshold": 2}
# The official predictor runs with the config's cap on conditioning frames (configs/samurai.yaml).
COND_CAP = load_config(None, "t").max_cond_frames_in_attn
# The official predictor clamps the previous logits it feeds back as a mask prompt to +-32 (sam2 1.1.0,
# `add_new_points_or_box`). Random weights give logits of ~1.5, so a second random checkpoint has its mask
# decoder's output hypernetworks scaled: every mask logit x LOUDNESS (~60), past the clamp on every frame.
OFFICIAL_MASK_CLAMP = 32.0
LOUDNESS = 40.0
LOUD_KEYS = ("sam_mask_decoder.output_hypernetworks_mlps.", ".layers.2.")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames, boxes = make_frames(NUM_FRAMES)
    assert frames[0].shape == (HEIGHT, WIDTH, 3)
    folder = write_jpeg_folder(tmp_path_factory.mktemp("corrections"), frames)
    return folder, read_jpeg_folder(folder), boxes


@pytest.fixture(scope="module")
def demo_clip(tmp_path_factory):
    frames, boxes = make_colour_frames(40)
    folder = tmp_path_factory.mktemp("corrections_demo") / "colour_clip"
    write_clip(folder, frames[:DEMO_FRAMES], boxes[:DEMO_FRAMES])
    return folder, read_jpeg_folder(folder), boxes


def _xyxy(box) -> tuple[float, float, float, float]:
    x, y, w, h = box
    return (float(x), float(y), float(x + w), float(y + h))


def _centre(box) -> tuple[float, float]:
    x, y, w, h = box
    return (x + w / 2, y + h / 2)


def _prompt(call: Call) -> Prompt:
    box = None
    if call.box_xyxy is not None:
        x1, y1, x2, y2 = call.box_xyxy
        box = Box(x1, y1, x2 - x1, y2 - y1)
    return Prompt(call.obj_id, tuple(call.points), tuple(call.labels), box, call.mask, remove=call.remove)


def _ours(models, images, calls: dict[int, list[Call]], mode: str, overrides: dict | None = None,
          factory=None, after_start: tuple[Call, ...] = ()):
    """The tracker stepping every frame and applying frame K's calls after K (frame 0's start the objects;
    `after_start` are given once frame 0 is tracked)."""
    bundle = open_bundle_with(models, factory or (lambda p: OnnxRunner(p, threads=TEST_THREADS)))
    config = load_config(None, bundle.manifest.model_size, mode)
    config = replace(config, samurai=replace(config.samurai, **(overrides or {})))
    tracker = MultiObjectTracker(bundle, config, num_frames=len(images))
    for call in calls.get(0, []):
        tracker.add(call.obj_id, call.box_xyxy)
    logits, masks, indices, kalman, scores = {}, {}, {}, {}, {}
    with bundle:
        for i, image in enumerate(images):
            step = tracker.step(i, image)
            results = dict(step.objects)
            for call in calls.get(i, []) if i else after_start:
                result = tracker.apply(_prompt(call), i, image)
                if result is not None:
                    results[call.obj_id] = result
            logits[i] = {k: r.low_res_logits for k, r in results.items()}
            masks[i] = {k: r.mask for k, r in results.items()}
            indices[i] = {k: r.mask_index for k, r in results.items()}
            kalman[i] = {k: r.kf_mean for k, r in results.items()}
            scores[i] = {k: r.object_score for k, r in results.items()}
    return logits, masks, indices, kalman, scores


def _official(checkpoint, folder, calls, mode: str, overrides: dict | None = None, after_start: tuple[Call, ...] = ()):
    samurai = replace(OFFICIAL_PARAMS["t"], **(overrides or {})) if mode == "samurai" else None
    return run_official_session(checkpoint, folder, IMAGE_SIZE, calls, samurai, TEST_THREADS, COND_CAP, after_start)


def _assert_same(ours, official, frames: int, logit_atol: float = LOGIT_ATOL) -> None:
    logits, masks = ours[:2]
    for i in range(frames):
        assert set(logits[i]) == set(official.logits[i]), f"frame {i}: objects"
        for obj_id, ref in official.logits[i].items():
            assert np.abs(logits[i][obj_id] - ref).max() <= logit_atol, f"frame {i}, object {obj_id}"
            assert abs(ours[4][i][obj_id] - official.scores[i][obj_id]) <= LOGIT_ATOL, f"frame {i}, object {obj_id}"
            assert mask_iou(masks[i][obj_id], official.masks[i][obj_id]) >= MIN_MASK_IOU, f"frame {i}, object {obj_id}"


def _changes_track(session, uncorrected, obj_id: int, frame: int) -> bool:
    """The prompt changed the object's logits, on its frame and on the next, by more than the test's tolerance."""
    return all(np.abs(session.logits[i][obj_id] - uncorrected.logits[i][obj_id]).max() > 2 * LOGIT_ATOL
               for i in (frame, frame + 1))


def _box_mask(box_xyxy, width: int, height: int) -> np.ndarray:
    """A disc inside the box, at the frame's size (a mask prompt that is not a box)."""
    x1, y1, x2, y2 = box_xyxy
    ys, xs = np.mgrid[0:height, 0:width]
    radius = min(x2 - x1, y2 - y1) / 2
    return (xs - (x1 + x2) / 2) ** 2 + (ys - (y1 + y2) / 2) ** 2 <= radius**2


def _cases(boxes, width: int = WIDTH, height: int = HEIGHT) -> dict[str, dict[int, list[Call]]]:
    start = {0: [Call(1, box_xyxy=_xyxy(boxes[0]))]}
    k = PROMPT_FRAME
    centre, target = _centre(boxes[k]), _xyxy(boxes[k])
    elsewhere = (20.0, 200.0)
    return {
        "one positive click": {**start, k: [Call(1, (centre,), (1,))]},
        "positive and negative click": {**start, k: [Call(1, (centre, elsewhere), (1, 0))]},
        "clicks accumulate": {**start, k: [Call(1, (elsewhere,), (1,)), Call(1, (centre,), (0,))]},
        "box correction": {**start, k: [Call(1, box_xyxy=(target[0] - 8, target[1] - 8, target[2] + 8, target[3]))]},
        "box and click": {**start, k: [Call(1, (elsewhere,), (0,), box_xyxy=target)]},
        "box after clicks": {**start, k: [Call(1, (elsewhere,), (1,)), Call(1, box_xyxy=target)]},
        "mask": {**start, k: [Call(1, mask=_box_mask(target, width, height))]},
        "mask after a click": {**start, k: [Call(1, (centre,), (1,)), Call(1, mask=_box_mask(target, width, height))]},
        "several frames": {**start, 2: [Call(1, (centre,), (1,))], 5: [Call(1, (elsewhere,), (1,))],
                           7: [Call(1, (centre, elsewhere), (0, 1))]},
    }


CASES = list(_cases([(0, 0, 1, 1)] * NUM_FRAMES))
# Several objects and removal follow SAM 2's predictor, which keeps them apart; SAMURAI's code keeps one Kalman
# state for all objects and reads frames before a new object's start, so in samurai mode the reference is SAMURAI's
# selection per object (`_samurai_reference`). The random weights' candidates all cover the frame, so their Kalman
# states agree whatever each object reads: the colour checkpoint's new object tests that each object has its own.
MULTI_CASES = ["new object with a box", "new object with a click", "new object with a mask",
               "new object with a box then a click", "removal"]


def _multi_cases(boxes) -> dict[str, dict[int, list[Call]]]:
    k = PROMPT_FRAME
    start = {0: [Call(1, box_xyxy=_xyxy(boxes[0]))]}
    return {
        "new object with a box": {**start, k: [Call(2, box_xyxy=(200.0, 20.0, 260.0, 70.0))]},
        "new object with a click": {**start, k: [Call(2, ((60.0, 180.0),), (1,))]},
        "new object with a mask": {**start, k: [Call(2, mask=_box_mask((200.0, 20.0, 260.0, 70.0), WIDTH, HEIGHT))]},
        "new object with a box then a click": {**start, k: [Call(2, box_xyxy=(200.0, 20.0, 260.0, 70.0)),
                                                            Call(2, ((210.0, 30.0),), (0,))]},
        "removal": {0: [*start[0], Call(2, box_xyxy=(200.0, 20.0, 260.0, 70.0))], k: [Call(2, remove=True)]},
    }


@pytest.fixture(scope="module")
def uncorrected(checkpoint, clip):
    folder, _, boxes = clip
    return {mode: _official(checkpoint, folder, {0: [Call(1, box_xyxy=_xyxy(boxes[0]))]}, mode, FAST_KALMAN)
            for mode in ("sam2", "samurai")}


@pytest.mark.parametrize("mode", ["sam2", "samurai"])
@pytest.mark.parametrize("case", CASES)
def test_correction_matches_official(checkpoint, export_128, clip, uncorrected, case, mode):
    folder, images, boxes = clip
    calls = _cases(boxes)[case]
    official = _official(checkpoint, folder, calls, mode, FAST_KALMAN)
    ours = _ours(export_128, images, calls, mode, FAST_KALMAN)
    _assert_same(ours, official, NUM_FRAMES)
    first = min(k for k in calls if k)
    assert case != "several frames" or len([k for k in calls if k]) > COND_CAP  # more corrections than the cap
    assert _changes_track(official, uncorrected[mode], 1, first)
    # Corrections are non-conditioning frames (add_all_frames_to_correct_as_cond=False): the object keeps one
    # conditioning frame however many it gets, so max_cond_frames_in_attn never selects.
    assert official.cond_frames == {1: [0]}
    if mode == "samurai":  # the same candidate on every multimask frame, the corrected ones included
        chosen = {i: ours[2][i][1] - 1 for i in range(1, NUM_FRAMES)}
        assert chosen == {i: official.predictor.log[i].index for i in chosen if official.predictor.log[i].index >= 0} | {
            i: chosen[i] for i in chosen if official.predictor.log[i].index < 0}
        assert any(log.kf_score is not None for log in official.predictor.log.values())
        _assert_same_kalman(ours, official, NUM_FRAMES)


@pytest.mark.parametrize("backend", EXACT_BACKEND_PARAMS)
def test_every_exact_backend_applies_a_box_and_a_click(request, checkpoint, clip, backend):
    """A correction with three points (a decoder gear of its own on the NPU) and the mask prompt on each runtime."""
    folder, images, boxes = clip
    calls = _cases(boxes)["box and click"]
    models = models_for(request, backend, "export_128")
    ours = _ours(models, images, calls, "sam2", factory=exact_factory(backend, models, TEST_THREADS))
    _assert_same(ours, _official(checkpoint, folder, calls, "sam2"), NUM_FRAMES)


def _trimmed(folder: Path, start: int, out: Path) -> Path:
    """The clip from frame `start` on, as the same JPEG files, padded with its last to the clip's length (the
    official predictor caps object pointers by the video's length, as the tracker does by `num_frames`)."""
    files = sorted(folder.glob("*.jpg"))
    out.mkdir()
    for i, source in enumerate(files[start:] + files[-1:] * start):
        shutil.copyfile(source, out / f"{i:05d}.jpg")
    return out


def _per_object(parts: dict[int, tuple[SessionRun, int, range]]) -> tuple[SessionRun, dict]:
    """One session of several objects from each object's own run: (run, its start frame, the frames it is in);
    and each object's Kalman mean after each of its multimask frames, by frame and object id."""
    masks: dict = {}
    logits: dict = {}
    scores: dict = {}
    kalman: dict = {}
    for obj_id, (run, start, frames) in parts.items():
        for i in frames:
            masks.setdefault(i, {})[obj_id] = run.masks[i - start][obj_id]
            logits.setdefault(i, {})[obj_id] = run.logits[i - start][obj_id]
            scores.setdefault(i, {})[obj_id] = run.scores[i - start][obj_id]
            log = run.predictor.log[i - start]
            if log.index >= 0:
                kalman.setdefault(i, {})[obj_id] = log.kf_mean
    return SessionRun(None, masks, logits, {}, scores), kalman


def _samurai_reference(checkpoint, folder: Path, calls, uncorrected_run: SessionRun, frames: int, tmp: Path,
                       overrides: dict | None = None) -> tuple[SessionRun, dict]:
    """Samurai mode with several objects: SAMURAI's selection per object (its code keeps one state for all).

    Object 1 is its uncorrected run; a new object on frame K is a single-object run of the clip trimmed
    to start at K, with the same calls; an object started on frame 0 and removed on K is its own run up to K.
    Returns the session and the Kalman means (`_per_object`).
    """
    parts = {1: (uncorrected_run, 0, range(frames))}
    for k, frame_calls in calls.items():
        for obj_id in dict.fromkeys(c.obj_id for c in frame_calls if c.obj_id != 1 and not c.remove):
            own = [c for c in frame_calls if c.obj_id == obj_id]
            if k == 0:
                removed = min(j for j, cs in calls.items() if any(c.obj_id == obj_id and c.remove for c in cs))
                run = _official(checkpoint, folder, {0: own}, "samurai", overrides)
                parts[obj_id] = (run, 0, range(removed + 1))
            else:
                trimmed = _trimmed(folder, k, tmp / f"from{k}_object{obj_id}")
                parts[obj_id] = (_official(checkpoint, trimmed, {0: own}, "samurai", overrides), k, range(k, frames))
    return _per_object(parts)


@pytest.mark.parametrize("mode", ["sam2", "samurai"])
@pytest.mark.parametrize("case", MULTI_CASES)
def test_objects_added_and_removed_match_official(checkpoint, export_128, clip, uncorrected, tmp_path, case, mode):
    """sam2 mode: the official predictor's session; samurai mode: SAMURAI's selection per object."""
    folder, images, boxes = clip
    calls = _multi_cases(boxes)[case]
    ours = _ours(export_128, images, calls, mode, FAST_KALMAN)
    if mode == "sam2":
        _assert_same(ours, _official(checkpoint, folder, calls, "sam2"), NUM_FRAMES)
        return
    official, kalman = _samurai_reference(checkpoint, folder, calls, uncorrected["samurai"], NUM_FRAMES, tmp_path,
                                          FAST_KALMAN)
    _assert_same(ours, official, NUM_FRAMES)
    _assert_same_kalman_per_object(ours, kalman)


@pytest.mark.parametrize("mode", ["sam2", "samurai"])
def test_a_click_on_the_start_frame_matches_official(checkpoint, export_128, clip, uncorrected, mode):
    """A click on frame 0 once it is tracked refines the box's result there from frame 0's own memory; frame 0
    stays the box's conditioning frame (the official predictor drops a correction's non-conditioning output on a
    conditioning frame), so the frames after it are those of the uncorrected run."""
    folder, images, boxes = clip
    calls = {0: [Call(1, box_xyxy=_xyxy(boxes[0]))]}
    click = (Call(1, ((20.0, 200.0),), (1,)),)
    official = _official(checkpoint, folder, calls, mode, FAST_KALMAN, after_start=click)
    _assert_same(_ours(export_128, images, calls, mode, FAST_KALMAN, after_start=click), official, NUM_FRAMES)
    assert np.abs(official.logits[0][1] - uncorrected[mode].logits[0][1]).max() > 2 * LOGIT_ATOL
    for i in range(1, NUM_FRAMES):
        assert np.abs(official.logits[i][1] - uncorrected[mode].logits[i][1]).max() <= LOGIT_ATOL, f"frame {i}"
    assert official.cond_frames == {1: [0]}


@pytest.fixture(scope="module")
def loud(checkpoint, tmp_path_factory) -> tuple[Path, Path]:
    """The random checkpoint with every mask logit scaled by LOUDNESS, and its 128 px export."""
    from convert.export_onnx import export

    folder = tmp_path_factory.mktemp("loud")
    state = torch.load(checkpoint, map_location="cpu")
    for key, value in state["model"].items():
        if key.startswith(LOUD_KEYS[0]) and LOUD_KEYS[1] in key:
            value.mul_(LOUDNESS)
    torch.save(state, folder / "loud_sam2.1_hiera_tiny.pt")
    export(folder / "loud_sam2.1_hiera_tiny.pt", folder / "models", image_size=IMAGE_SIZE, simplify_graphs=True)
    return folder / "loud_sam2.1_hiera_tiny.pt", folder / "models"


def test_the_mask_prompt_is_clamped_as_the_official_predictor_clamps_it(loud, clip):
    """Previous logits past +-32 on the corrected frame enter the decoder clamped, as in the official predictor."""
    folder, images, boxes = clip
    loud_checkpoint, loud_models = loud
    calls = _cases(boxes)["one positive click"]
    start = {0: calls[0]}
    plain = _official(loud_checkpoint, folder, start, "sam2")
    assert np.abs(plain.logits[PROMPT_FRAME][1]).max() > 1.5 * OFFICIAL_MASK_CLAMP
    official = _official(loud_checkpoint, folder, calls, "sam2")
    _assert_same(_ours(loud_models, images, calls, "sam2"), official, NUM_FRAMES, LOUDNESS * LOGIT_ATOL)
    assert _changes_track(official, plain, 1, PROMPT_FRAME)


@pytest.mark.parametrize("mode", ["sam2", "samurai"])
def test_clicks_turn_sam2_back_from_the_distractor(demo_checkpoint, demo_models, demo_clip, mode):
    """After SAM 2 jumps to the distractor, a click on the target and one on the distractor change the track."""
    folder, images, boxes = demo_clip
    k = DEMO_PROMPT_FRAME
    x, y, _, _ = boxes[k]
    target, distractor = _centre(boxes[k]), (x + TARGET_SIZE + DISTRACTOR_GAP + 4.0, y + TARGET_SIZE / 2)
    calls = {0: [Call(1, box_xyxy=_xyxy(boxes[0]))], k: [Call(1, (target, distractor), (1, 0))]}
    official = _official(demo_checkpoint, folder, calls, mode)
    ours = _ours(demo_models, images, calls, mode)
    _assert_same(ours, official, DEMO_FRAMES)
    found = np.array([_mask_box(official.masks[k][1])], np.float64)
    assert box_iou(found, np.asarray([boxes[k]], np.float64))[0] >= ON_TARGET_IOU
    plain = _ours(demo_models, images, {0: calls[0]}, mode)
    assert mask_iou(plain[1][k][1], ours[1][k][1]) < ON_TARGET_IOU or mode == "samurai"


def _assert_same_kalman(ours, official, frames: int) -> None:
    """The same Kalman mean after every multimask frame, corrected ones included (float64 on both sides)."""
    for i in range(1, frames):
        log = official.predictor.log[i]
        if log.index >= 0:
            np.testing.assert_allclose(ours[3][i][1], log.kf_mean, rtol=1e-9, atol=1e-9, err_msg=f"frame {i}")


def _assert_same_kalman_per_object(ours, kalman: dict) -> None:
    """Each object's own Kalman mean after each of its multimask frames (`_per_object`)."""
    assert kalman
    for i, by_object in kalman.items():
        for obj_id, mean in by_object.items():
            np.testing.assert_allclose(ours[3][i][obj_id], mean, rtol=1e-9, atol=1e-9, err_msg=f"frame {i}, {obj_id}")


def test_samurai_one_click_advances_the_kalman_filter_again(demo_checkpoint, demo_models, demo_clip):
    """On the colour clip the filter follows the moving target: a one-click correction predicts and updates it a
    second time on its frame, as the SAMURAI code's filter does on every multimask call."""
    folder, images, boxes = demo_clip
    k = KALMAN_PROMPT_FRAME
    calls = {0: [Call(1, box_xyxy=_xyxy(boxes[0]))], k: [Call(1, (_centre(boxes[k]),), (1,))]}
    official = _official(demo_checkpoint, folder, calls, "samurai")
    ours = _ours(demo_models, images, calls, "samurai")
    _assert_same(ours, official, DEMO_FRAMES)
    _assert_same_kalman(ours, official, DEMO_FRAMES)
    plain = _ours(demo_models, images, {0: calls[0]}, "samurai")
    assert np.abs(plain[3][k][1] - ours[3][k][1]).max() > 1e-3


def _mask_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return (int(xs.min()), int(ys.min()), int(xs.max() - xs.min()), int(ys.max() - ys.min()))


def _tracker(models, history: int) -> MultiObjectTracker:
    bundle = open_bundle_with(models, lambda p: OnnxRunner(p, threads=TEST_THREADS))
    config = replace(load_config(None, bundle.manifest.model_size, "sam2"), prompt_history=history)
    return MultiObjectTracker(bundle, config, num_frames=NUM_FRAMES)


def test_a_prompt_on_an_older_held_frame_refines_from_that_frame(export_128, clip):
    """A click on frame K once K+2 is tracked gives K the result a click right after K gives, and the object goes
    on from it; frames no longer held, and unknown ids to remove, are refused with the range that is held."""
    _, images, boxes = clip
    k, history = PROMPT_FRAME, 3
    click = Prompt(1, (_centre(boxes[k]),), (1,))
    at_once, later = _tracker(export_128, history), _tracker(export_128, history)
    for tracker in (at_once, later):
        tracker.add(1, _xyxy(boxes[0]))
        for i in range(k + 1):
            tracker.step(i, images[i])
    corrected = at_once.apply(click, k, images[k])
    for i in (k + 1, k + 2):
        later.step(i, images[i])
    assert later.held_frames() == range(k, k + 3)
    assert np.array_equal(later.apply(click, k, images[k]).low_res_logits, corrected.low_res_logits)
    # It goes on from frame K's corrected state (its newest memory is K's corrected one).
    newest, expected = later.objects[1].memory.recent[-1], at_once.objects[1].memory.recent[-1]
    assert newest.frame_idx == k and np.array_equal(newest.features, expected.features)
    with pytest.raises(ValueError, match=f"frame {k - 1} is not held: prompts may refer to frames {k} to {k + 2}"):
        later.apply(click, k - 1, images[k - 1])
    with pytest.raises(ValueError, match="object 7 is not tracked"):
        later.apply(Prompt(7, remove=True), k + 1, images[k + 1])


def _logits_with(models, images, boxes, prompts: dict[int, list[tuple[int, Prompt]]]) -> dict[int, np.ndarray]:
    """Object 1's logits on every frame: each frame stepped, then the prompts given after it as (frame, prompt)."""
    tracker = _tracker(models, NUM_FRAMES)
    tracker.add(1, _xyxy(boxes[0]))
    logits = {}
    for i, image in enumerate(images):
        logits[i] = tracker.step(i, image).objects[1].low_res_logits
        for frame, prompt in prompts.get(i, []):
            result = tracker.apply(prompt, frame, images[frame])
            logits[frame] = result.low_res_logits
    return logits


def test_undo_takes_a_prompt_back_exactly(export_128, clip):
    """A click then its undo is no click, on its frame and every frame after, given right away or on an older frame;
    two clicks then an undo are the first click alone; with nothing left to undo, the undo is refused."""
    _, images, boxes = clip
    k = PROMPT_FRAME
    click, other = Prompt(1, (_centre(boxes[k]),), (1,)), Prompt(1, ((20.0, 200.0),), (0,))
    undo = Prompt(1, undo=True)
    plain = _logits_with(export_128, images, boxes, {})
    clicked = _logits_with(export_128, images, boxes, {k: [(k, click)]})
    assert np.abs(clicked[k + 1] - plain[k + 1]).max() > 2 * LOGIT_ATOL  # the click changes the track
    for prompts in ({k: [(k, click), (k, undo)]}, {k + 2: [(k, click), (k, undo)]}):
        undone = _logits_with(export_128, images, boxes, prompts)
        for i in range(k, NUM_FRAMES):
            assert np.array_equal(undone[i], plain[i]), f"frame {i}"
    one = _logits_with(export_128, images, boxes, {k: [(k, click), (k, other), (k, undo)]})
    for i in range(k, NUM_FRAMES):
        assert np.array_equal(one[i], clicked[i]), f"frame {i}"
    with pytest.raises(ValueError, match=f"nothing to undo for object 1 on frame {k}"):
        _logits_with(export_128, images, boxes, {k: [(k, click), (k, undo), (k, undo)]})


@pytest.mark.parametrize("mode", ["sam2", "samurai"])
@pytest.mark.parametrize("case", ["box correction", "new object with a box"])
def test_demo_checkpoint_box_correction_and_new_object(demo_checkpoint, demo_models, demo_clip, tmp_path, case, mode):
    """On the colour checkpoint after SAM 2's jump: a box on the target (its single-mask token is the red pixels,
    so in sam2 mode the box turns frame K back to the target), and a second object started there."""
    folder, images, boxes = demo_clip
    k = DEMO_PROMPT_FRAME
    x, y, w, h = boxes[k]
    start = {0: [Call(1, box_xyxy=_xyxy(boxes[0]))]}
    calls = {"box correction": {**start, k: [Call(1, box_xyxy=(x - 4.0, y - 4.0, x + w + 4.0, y + h))]},
             "new object with a box": {**start, k: [Call(2, box_xyxy=_xyxy(boxes[k]))]}}[case]
    ours = _ours(demo_models, images, calls, mode)
    if mode == "samurai" and case == "new object with a box":
        plain = _official(demo_checkpoint, folder, start, mode)
        official, kalman = _samurai_reference(demo_checkpoint, folder, calls, plain, DEMO_FRAMES, tmp_path)
        _assert_same_kalman_per_object(ours, kalman)
    else:
        official = _official(demo_checkpoint, folder, calls, mode)
    _assert_same(ours, official, DEMO_FRAMES)
    found = np.array([_mask_box(official.masks[k][max(official.masks[k])])], np.float64)
    assert box_iou(found, np.asarray([boxes[k]], np.float64))[0] >= ON_TARGET_IOU


def test_a_new_object_may_start_on_an_unstepped_frame_before_the_newest(export_128, clip):
    """With no object tracked the caller steps no frame: an object drawn on frame 8, then one on frame 7, start
    where they were drawn (as the official predictor would), each as it would alone; both go on from there.
    Frames past `prompt_history` are still refused."""
    _, images, boxes = clip
    history = 3
    tracker, alone = _tracker(export_128, history), _tracker(export_128, history)
    tracker.apply(Prompt(1, box=Box(*boxes[8])), 8, images[8])
    early = tracker.apply(Prompt(2, box=Box(*boxes[7])), 7, images[7])
    expected = alone.apply(Prompt(2, box=Box(*boxes[7])), 7, images[7])
    assert np.array_equal(early.low_res_logits, expected.low_res_logits)
    assert tracker.held_frames() == range(7, 9)
    assert set(tracker.step(9, images[9]).objects) == {1, 2}
    with pytest.raises(ValueError, match="frame 6 is not held: prompts may refer to frames 7 to 9"):
        tracker.apply(Prompt(3, box=Box(*boxes[6])), 6, images[6])
