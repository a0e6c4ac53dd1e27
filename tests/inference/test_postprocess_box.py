"""Post-processing steps work inside each label's bounding box: the result must equal the
whole-volume operation, including labels touching the volume's edge."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from inference import postprocess as pp


def _whole_volume(labels: np.ndarray) -> np.ndarray:
    out = labels.copy()
    for v in [int(x) for x in np.unique(out) if x]:
        filled = ndimage.binary_fill_holes(out == v)
        out[filled & (out == 0)] = v
    for v in [int(x) for x in np.unique(out) if x]:
        mask = out == v
        comp, n = ndimage.label(mask, structure=np.ones((3, 3, 3)))
        if n > 1:
            sizes = np.bincount(comp.ravel())
            sizes[0] = 0
            out[mask & (comp != sizes.argmax())] = 0
    return out


def test_fill_and_keep_largest_in_the_box_equal_the_whole_volume() -> None:
    rng = np.random.default_rng(2)
    for offset_max in (0, 10):  # 0: every label touches the volume's first faces
        for _ in range(15):
            labels = np.zeros((20, 22, 24), np.uint8)
            sub = (rng.random((10, 12, 14)) < 0.6) * rng.integers(1, 3, (10, 12, 14))
            o = rng.integers(0, offset_max + 1, 3)
            labels[o[0]:o[0] + 10, o[1]:o[1] + 12, o[2]:o[2] + 14] = sub
            ours = labels.copy()
            pp.fill_holes(ours, None)
            pp.keep_largest_component(ours, None)
            np.testing.assert_array_equal(ours, _whole_volume(labels))
    # A closed shell touching the far faces: its cavity is filled, as in the whole volume.
    shell = np.zeros((9, 9, 9), np.uint8)
    shell[3:9, 3:9, 3:9] = 1
    shell[5:8, 5:8, 5:8] = 0
    ours = shell.copy()
    pp.fill_holes(ours, [1])
    assert ours[6, 6, 6] == 1
    np.testing.assert_array_equal(ours, _whole_volume(shell))


def test_joint_keeps_the_largest_cluster_of_all_labels_together() -> None:
    """brainchop's filter: labels 1 and 2 touching form one cluster and both stay; an
    island of label 2 away from it goes, though per label it would be label 2's largest."""
    labels = np.zeros((12, 12, 12), np.uint8)
    labels[1:5, 1:5, 1:5] = 1
    labels[5:7, 1:5, 1:5] = 2  # touches label 1
    labels[9:12, 8:12, 8:12] = 2  # detached, larger than the touching part of label 2
    joint = labels.copy()
    pp.keep_largest_component(joint, None, joint=True)
    assert (joint[1:7, 1:5, 1:5] > 0).all() and not joint[9:, 8:, 8:].any()
    per_label = labels.copy()
    pp.keep_largest_component(per_label, None)
    assert per_label[9:, 8:, 8:].all() and not (per_label == 2)[5:7].any()
