"""Dataset readers on tiny datasets written in each benchmark's layout."""

from __future__ import annotations

import numpy as np
import pytest

from app.benchmarks.datasets import (
    LASOT_ATTRIBUTES,
    PROTOCOL_GOT10K,
    PROTOCOL_LASOT,
    PROTOCOL_UAV,
    DatasetError,
    load_attributes,
    load_dataset,
)
from scripts import eval as eval_cli
from tests import benchmark_layouts as layouts

BOXES = np.array([[2, 3, 10, 8], [3, 3, 10, 8], [4, 4, 0, 0], [5, 4, 11, 9]], dtype=np.float64)


def test_lasot_flags_listing_and_attributes(tmp_path):
    root = layouts.lasot(
        tmp_path, {"cat-1": BOXES, "cat-2": BOXES[:3], "dog-4": BOXES},
        occluded={"cat-1": [0, 1, 0, 0]}, out_of_view={"cat-1": [0, 0, 0, 1]},
    )
    layouts.write_text(root / "testing_set.txt", "dog-4\ncat-1\n")
    dataset = load_dataset("lasot", root)
    assert [s.name for s in dataset.sequences] == ["dog-4", "cat-1"]
    assert dataset.protocol == PROTOCOL_LASOT and dataset.scorable
    cat = dataset.sequences[1]
    assert cat.visible.tolist() == [True, False, True, False]
    assert cat.frames[0] == root / "cat" / "cat-1" / "img" / "00000001.jpg" and len(cat.frames) == 4
    np.testing.assert_array_equal(cat.ground_truth, BOXES)
    # Without testing_set.txt every sequence on disk is one; LaSOT-ext keeps the flags, not the LaSOT rules.
    (root / "testing_set.txt").unlink()
    extension = load_dataset("lasot_ext", root)
    assert [s.name for s in extension.sequences] == ["cat-1", "cat-2", "dog-4"]
    assert extension.protocol != PROTOCOL_LASOT and extension.sequences[0].visible is not None
    assert load_attributes(extension) is None
    flags = ["1,0,0,0,0,0,0,0,0,1,0,0,0,0", "0,0,0,0,0,0,0,0,0,1,0,0,0,0", "0 0 0 0 0 0 0 0 0 0 0 0 0 1"]
    for name, line in zip(("cat-1", "cat-2", "dog-4"), flags):
        layouts.write_text(root / "att" / f"{name}.txt", line + "\n")
    attributes = load_attributes(extension)
    assert attributes == {"cat-1": {"IV", "FOC"}, "cat-2": {"FOC"}, "dog-4": {"ARC"}}
    assert len(LASOT_ATTRIBUTES) == 14
    layouts.write_text(root / "att" / "dog-4.txt", "1,0\n")
    with pytest.raises(DatasetError, match="2 flags"):
        load_attributes(extension)


def test_lasot_flag_length_and_missing_file(tmp_path):
    root = layouts.lasot(tmp_path, {"cat-1": BOXES}, occluded={"cat-1": [0, 0]})
    with pytest.raises(DatasetError, match="full_occlusion.txt 2"):
        load_dataset("lasot", root)
    (root / "cat" / "cat-1" / "full_occlusion.txt").unlink()
    with pytest.raises(DatasetError, match="full_occlusion.txt not found"):
        load_dataset("lasot", root)


def test_got10k_val_and_test_splits(tmp_path):
    root = layouts.got10k(tmp_path, "val", {"GOT-10k_Val_000001": BOXES}, covers={"GOT-10k_Val_000001": [8, 0, 3, 8]},
                          resolution=(640, 480))
    layouts.got10k(tmp_path, "test", {"GOT-10k_Test_000001": BOXES[:1]}, frames={"GOT-10k_Test_000001": 5})
    val = load_dataset("got10k", root, "val")
    sequence = val.sequences[0]
    assert val.protocol == PROTOCOL_GOT10K and val.scorable
    assert sequence.cover.tolist() == [8, 0, 3, 8] and sequence.resolution == (640, 480)
    assert [p.name for p in sequence.frames] == [f"0000000{i}.jpg" for i in range(1, 5)]
    test = load_dataset("got10k", root, "test")
    assert not test.scorable and len(test.sequences[0].frames) == 5
    assert test.sequences[0].first_box.tolist() == [2, 3, 10, 8]
    # The split folder itself is a valid root as well.
    assert load_dataset("got10k", root / "val").sequences[0].name == "GOT-10k_Val_000001"


def test_otb_separators_ranges_and_two_target_folders(tmp_path):
    tiger = np.tile(BOXES, (2, 1))  # 8 lines; Tiger1 skips its first 5 annotated frames
    root = layouts.otb(tmp_path, {
        "Basketball": (BOXES, ","), "Bolt": (BOXES, "\t"), "Car4": (BOXES, " "),
        "Jogging_1": (BOXES, ","), "Jogging_2": (BOXES[:3], ","), "Tiger1": (tiger, ","), "David": (BOXES, ","),
    }, first_frame={"David": 300})
    dataset = load_dataset("otb", root)
    sequences = {s.name: s for s in dataset.sequences}
    assert set(sequences) == {"Basketball", "Bolt", "Car4", "Jogging_1", "Jogging_2", "Tiger1", "David"}
    for name in ("Basketball", "Bolt", "Car4"):
        np.testing.assert_array_equal(sequences[name].ground_truth, BOXES)
    assert len(sequences["Jogging_2"].frames) == 3
    assert sequences["Jogging_1"].frames[0].parent == root / "Jogging" / "img"
    assert [p.name for p in sequences["Tiger1"].frames] == ["0006.jpg", "0007.jpg", "0008.jpg"]
    np.testing.assert_array_equal(sequences["Tiger1"].ground_truth, tiger[5:])
    # David's annotation starts at frame 300 of its folder (4 boxes here, so the range is cut to them).
    assert [p.name for p in sequences["David"].frames] == ["0300.jpg", "0301.jpg", "0302.jpg", "0303.jpg"]
    assert all(p.is_file() for s in dataset.sequences for p in s.frames)


def test_nfs_uav_trackingnet(tmp_path):
    nfs = load_dataset("nfs", layouts.nfs(tmp_path / "nfs", {"Gymnastics": BOXES}))
    assert nfs.sequences[0].frames[-1].name == "00004.jpg" and nfs.sequences[0].frames[-1].is_file()
    with_nan = BOXES.copy()
    with_nan[2] = np.nan
    uav_root = layouts.uav123(tmp_path / "uav", {"bike1": with_nan})
    layouts.write_text(uav_root / "anno" / "UAV123" / "bird1_2.txt", layouts.box_lines(BOXES[:3]))
    uav = {s.name: s for s in load_dataset("uav123", uav_root).sequences}
    assert np.isnan(uav["bike1"].ground_truth[2]).all()
    assert [p.name for p in uav["bird1_2"].frames] == ["000775.jpg", "000776.jpg", "000777.jpg"]
    assert uav["bird1_2"].frames[0].parent.name == "bird1"
    assert load_dataset("uav123", uav_root).protocol == PROTOCOL_UAV
    tn = load_dataset("trackingnet", layouts.trackingnet(tmp_path / "tn", {"abc_1": (BOXES[:1], 12)}))
    assert [p.name for p in tn.sequences[0].frames][:3] == ["0.jpg", "1.jpg", "2.jpg"]
    assert len(tn.sequences[0].frames) == 12
    assert not tn.scorable


def test_bad_annotation_lines(tmp_path):
    root = layouts.nfs(tmp_path, {"bee": BOXES})
    layouts.write_text(root / "anno" / "nfs_bee.txt", "1,2,3\n")
    with pytest.raises(DatasetError, match="line 1 has 3 values"):
        load_dataset("nfs", root)
    layouts.write_text(root / "anno" / "nfs_bee.txt", "1,2,x,4\n")
    with pytest.raises(DatasetError, match="not numeric"):
        load_dataset("nfs", root)


@pytest.mark.parametrize("dataset", ["lasot", "lasot_ext", "got10k", "otb", "nfs", "trackingnet", "uav123"])
def test_bad_root_is_one_line_exit_2(dataset, tmp_path, capfd):
    for root in (tmp_path / "missing", tmp_path):
        code = eval_cli.main(["score", "--dataset", dataset, "--root", str(root), "--results", str(tmp_path),
                              "--out", str(tmp_path / "report")])
        assert code == 2
        err = capfd.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--root" in err and "Traceback" not in err


def test_unknown_sequence_and_bad_shard(tmp_path, capfd):
    root = layouts.nfs(tmp_path / "nfs", {"bee": BOXES})
    args = ["--dataset", "nfs", "--root", str(root), "--out", str(tmp_path / "out"), "--model-dir", str(tmp_path)]
    assert eval_cli.main(["run", *args, "--sequences", "wasp"]) == 2
    assert "no sequence wasp" in capfd.readouterr().err
    assert eval_cli.main(["run", *args, "--shard", "3/2"]) == 2
    assert "K must be between 1 and N" in capfd.readouterr().err
    assert eval_cli.main(["run", *args]) == 2  # no models there
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "manifest.json not found" in err
