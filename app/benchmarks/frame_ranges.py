"""Sequences whose frames do not simply start at 1 and follow the annotation file line by line.

OTB-100 ships some image folders with frames outside the annotated range, a
folder shared by two targets (`groundtruth_rect.1.txt`, `.2.txt`) and one
sequence whose first annotated frames are skipped; UAV123 cuts long flights
into several sequences that share one image folder. These are the ranges the
benchmarks' own toolkits use (and pytracking after them); every other
sequence runs from frame 1 for as many frames as its annotation has lines.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FrameRange:
    start: int  # number of the first frame file
    end: int  # number of the last frame file
    digits: int  # zero-padded width of the frame file names
    skip: int = 0  # annotated frames left out at the start (frames and annotation lines)


OTB_DIGITS = 4
UAV_DIGITS = 6

OTB_RANGES: dict[str, FrameRange] = {
    "BlurCar1": FrameRange(247, 988, OTB_DIGITS),
    "BlurCar3": FrameRange(3, 359, OTB_DIGITS),
    "BlurCar4": FrameRange(18, 397, OTB_DIGITS),
    "Board": FrameRange(1, 698, 5),
    "David": FrameRange(300, 770, OTB_DIGITS),
    "Diving": FrameRange(1, 215, OTB_DIGITS),
    "Football1": FrameRange(1, 74, OTB_DIGITS),
    "Freeman3": FrameRange(1, 460, OTB_DIGITS),
    "Freeman4": FrameRange(1, 283, OTB_DIGITS),
    "Tiger1": FrameRange(1, 354, OTB_DIGITS, skip=5),
}

# UAV123 sequences cut from one flight: name -> (image folder, frame range).
UAV_SPLITS: dict[str, tuple[str, FrameRange]] = {
    name: (name.rsplit("_", 1)[0], FrameRange(start, end, UAV_DIGITS))
    for name, start, end in (
        ("bird1_1", 1, 253), ("bird1_2", 775, 1477), ("bird1_3", 1573, 2437),
        ("car1_1", 1, 751), ("car1_2", 751, 1627), ("car1_3", 1627, 2629),
        ("car16_1", 1, 415), ("car16_2", 415, 1993),
        ("car6_1", 1, 487), ("car6_2", 487, 1807), ("car6_3", 1807, 2953), ("car6_4", 2953, 3925),
        ("car6_5", 3925, 4861),
        ("car8_1", 1, 1357), ("car8_2", 1357, 2575),
        ("group1_1", 1, 1333), ("group1_2", 1333, 2515), ("group1_3", 2515, 3925), ("group1_4", 3925, 4873),
        ("group2_1", 1, 907), ("group2_2", 907, 1771), ("group2_3", 1771, 2683),
        ("group3_1", 1, 1567), ("group3_2", 1567, 2827), ("group3_3", 2827, 4369), ("group3_4", 4369, 5527),
        ("person12_1", 1, 601), ("person12_2", 601, 1621),
        ("person14_1", 1, 847), ("person14_2", 847, 1813), ("person14_3", 1813, 2923),
        ("person17_1", 1, 1501), ("person17_2", 1501, 2347),
        ("person19_1", 1, 1243), ("person19_2", 1243, 2791), ("person19_3", 2791, 4357),
        ("person2_1", 1, 1189), ("person2_2", 1189, 2623),
        ("person4_1", 1, 1501), ("person4_2", 1501, 2743),
        ("person5_1", 1, 877), ("person5_2", 877, 2101),
        ("person7_1", 1, 1249), ("person7_2", 1249, 2065),
        ("person8_1", 1, 1075), ("person8_2", 1075, 1525),
        ("truck4_1", 1, 577), ("truck4_2", 577, 1261),
        ("uav1_1", 1, 1555), ("uav1_2", 1555, 2377), ("uav1_3", 2473, 3469),
    )
}
