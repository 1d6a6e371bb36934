"""The score-map family's own parts: cell targets from boxes and masks, masks moving with
the augmentation, boxes from a map's connected components. No training here (the trained
tiny score map is in test_detector.py)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ml.detector import DetectorConfig, DetSample, augment_sample, make_dataset
from ml.detector.scoremap import boxes_from_map


def cfg(**kw) -> DetectorConfig:
    base = dict(
        family="scoremap", backbone="mobilenet_025", image_size=64, batch_size=2, map_width=8
    )
    return DetectorConfig(**{**base, **kw})


@pytest.fixture
def boxed_and_masked(tmp_path) -> list[DetSample]:
    """A 128x64 photo with a box (left) and the same photo with a mask (right) instead."""
    img = np.full((64, 128, 3), 200, np.uint8)
    Image.fromarray(img).save(tmp_path / "a.jpg")
    mask = np.zeros((64, 128), np.uint8)
    mask[16:48, 96:128] = 2  # any non-zero value is rust (corrosion-vt stores states 1..3)
    Image.fromarray(mask).save(tmp_path / "a.png")
    box = np.array([[0, 0, 32, 32]], np.float32)
    image = tmp_path / "a.jpg"
    return [DetSample(image, box), DetSample(image, box, tmp_path / "a.png")]


def test_targets_come_from_boxes_or_from_the_mask(boxed_and_masked):
    """Unaugmented, the 128 px wide photo fills the 64 px canvas at half scale: 8 px cells."""
    ((x, y),) = make_dataset(boxed_and_masked, cfg(), training=False).take(1)
    y = np.asarray(y)
    assert x.shape == (2, 64, 64, 3) and y.shape == (2, 8, 8, 2)
    box_target, mask_target = y[0, ..., 0], y[1, ..., 0]
    expected_box = np.zeros((8, 8))
    expected_box[:2, :2] = 1  # the box covers 16x16 canvas px: 2x2 cells
    np.testing.assert_array_equal(box_target, expected_box)
    expected_mask = np.zeros((8, 8))
    expected_mask[1:3, 6:8] = 1  # the mask, not the box, of the second sample
    # (the antialiased letterbox resize softens the mask's edge a little)
    np.testing.assert_allclose(mask_target, expected_mask, atol=0.05)
    assert np.all(y[..., 1] == 1)  # nothing ignored


def test_mask_moves_with_the_pixels_under_augmentation():
    import tensorflow as tf

    tf.random.set_seed(7)
    img = np.full((60, 90, 3), 200, np.uint8)
    img[10:40, 50:80] = (150, 60, 20)
    mask = np.zeros((60, 90), np.uint8)
    mask[10:40, 50:80] = 1
    config = cfg(image_size=96, color=0.0, crop_prob=0.8)
    for _ in range(10):
        out = augment_sample(img, np.zeros((0, 4)), config, True, mask)
        canvas, _, _, m = (np.asarray(t) for t in out)
        assert canvas.shape == (96, 96, 3) and m.shape == (96, 96)
        rusty = np.abs(canvas - np.array([150, 60, 20])).max(axis=-1) < 20
        on = m > 0.9
        if on.sum() > 20:
            assert rusty[on].mean() > 0.95
        assert not rusty[m < 0.1].any() or rusty[m < 0.1].mean() < 0.02


def test_boxes_come_from_regions_at_each_threshold():
    config = cfg(box_thresholds=(0.3, 0.7), min_region=0.01)
    prob = np.zeros((20, 30), np.float32)
    prob[2:8, 3:10] = 0.5  # a faint region
    prob[4:6, 5:8] = 0.9  # with a hot core: found again, nested, at 0.7
    prob[12:18, 20:28] = 0.8  # a hot region
    prob[0, 29] = 0.95  # a speck below min_region
    boxes, scores = boxes_from_map(prob, config)
    found = {tuple(b): float(s) for b, s in zip(boxes.astype(int).tolist(), scores, strict=True)}
    assert set(found) == {(3, 2, 10, 8), (5, 4, 8, 6), (20, 12, 28, 18)}
    assert found[(5, 4, 8, 6)] == pytest.approx(0.9)
    assert found[(20, 12, 28, 18)] == pytest.approx(0.8)
    assert list(scores) == sorted(scores, reverse=True)
    up, _ = boxes_from_map(prob, config, upsample=4)
    assert len(up) == 3 and up.max() <= 120
    assert len(boxes_from_map(np.zeros((8, 8)), config)[0]) == 0


def two_blobs() -> np.ndarray:
    """A 30x50 map where two hot blobs (peaks 0.9 and 0.8 at x = 17 and 33) merge above 0.3."""
    y, x = np.mgrid[0:30, 0:50].astype(np.float32)

    def blob(cx, peak):
        return peak * np.exp(-((x - cx) ** 2 + (y - 15) ** 2) / 50)

    return (blob(17, 0.9) + blob(33, 0.8)).clip(0, 1)


def test_watershed_split_boxes_each_hot_core_inside_the_enclosing_region():
    prob = two_blobs()
    (region,), _ = boxes_from_map(prob, cfg(box_thresholds=(0.3,), box_split="none"))
    assert region.tolist() == [10, 8, 41, 23]  # one region: the blobs merge above 0.3
    config = cfg(box_thresholds=(0.3,), box_split="watershed", split_min_depth=0.0)
    boxes, scores = boxes_from_map(prob, config)
    assert len(boxes) == 3
    found = {tuple(b): float(s) for b, s in zip(boxes.astype(int).tolist(), scores, strict=True)}
    x0, y0, x1, y1 = region.astype(int)
    assert (x0, y0, x1, y1) in found
    left, right = sorted(b for b in found if b != (x0, y0, x1, y1))
    assert left[0] == x0 and right[2] == x1 and left[2] == right[0]  # split at the saddle
    assert 24 <= left[2] <= 27
    assert left[0] < 17 < left[2] and right[0] < 33 < right[2]
    assert left[1] == right[1] == y0 and left[3] == right[3] == y1
    # each box scores its own mean: the hotter core outranks the region round it
    assert found[left] > found[(x0, y0, x1, y1)] > found[right]
    assert list(scores) == sorted(scores, reverse=True)


def test_a_shallow_dip_or_close_peaks_do_not_split_a_region():
    prob = two_blobs()  # the lower peak stands ~0.33 above the saddle, 16 cells apart
    for kw in ({"split_min_depth": 0.4}, {"split_min_distance": 20}):
        config = cfg(box_thresholds=(0.3,), box_split="watershed", **kw)
        assert len(boxes_from_map(prob, config)[0]) == 1
    config = cfg(box_thresholds=(0.3,), box_split="watershed", split_min_depth=0.25)
    assert len(boxes_from_map(prob, config)[0]) == 3
    upsampled, _ = boxes_from_map(prob, cfg(box_thresholds=(0.3,), box_split="watershed"), 4)
    assert len(upsampled) == 3  # min distance in cells, whatever the upsampling
    flat = (two_blobs() > 0.3) * 0.5  # one flat region: one core, whatever its size
    flat[5:25, 5:45] = 0.9
    config = cfg(box_thresholds=(0.3,), box_split="watershed", split_min_distance=1)
    assert len(boxes_from_map(flat, config)[0]) == 1
    with pytest.raises(ValueError, match="box_split"):
        cfg(box_split="kmeans")


def test_keras_hub_internals_are_behind_the_version_pin(monkeypatch):
    import keras_hub

    from ml.detector import hub

    hub.check_keras_hub()  # the pinned version passes
    monkeypatch.setattr(keras_hub, "__version__", "0.40.1")
    with pytest.raises(ImportError, match=r"checked against 0\.32\.x; keras-hub 0\.40\.1"):
        hub.check_keras_hub()
