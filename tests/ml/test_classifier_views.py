"""Tile scoring and hue jitter of the classifier (issue 11), on tiny photos in seconds."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ml.classifier import ClassifierConfig, RustClassifier
from ml.images import apply_view, load_views, tile_box, tile_names


def test_tile_windows_overlap_by_half_and_cover_the_photo():
    boxes = [tile_box(v, 400, 300) for v in tile_names((2,))]
    assert boxes == [(0, 0, 267, 200), (133, 0, 400, 200), (0, 100, 267, 300), (133, 100, 400, 300)]
    covered = np.zeros((300, 400), bool)
    for x0, y0, x1, y1 in (tile_box(v, 400, 300) for v in tile_names((3,))):
        covered[y0:y1, x0:x1] = True
    assert covered.all()
    for bad in ("tile2_4", "tile0_0", "tilex"):
        with pytest.raises(ValueError, match="not a tile view"):
            tile_box(bad, 400, 300)


def test_tile_and_hue_views_render_what_they_say(tmp_path):
    rgb = np.zeros((40, 60, 3), np.uint8)
    rgb[:12, :18] = (180, 70, 20)  # rust-brown top-left corner, the rest black
    img = Image.fromarray(rgb)
    assert apply_view(img, "tile2_0", 16)[..., 0].max() == 180  # the window holds the corner
    assert apply_view(img, "tile2_3", 16).max() == 0  # the opposite one does not
    # hue<N> crops and flips where aug<N> does, then turns the hue: same brightness pattern
    aug, hue = apply_view(img, "aug3", 16, "s"), apply_view(img, "hue3", 16, "s")
    np.testing.assert_array_equal(aug.max(axis=2) > 0, hue.max(axis=2) > 0)
    # a tile of a large JPEG is decoded at a resolution that keeps `size` pixels a side
    path = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (800, 800, 3), np.uint8)).save(path)
    assert load_views(path, ["full", "tile3_0"], 200).shape == (2, 200, 200, 3)


def test_views_are_ordered_so_prediction_views_come_first():
    cfg = ClassifierConfig(tile_grids=(2,), hue_jitter=True, n_aug=2)
    assert cfg.predict_views == ["full", "hflip", "tile2_0", "tile2_1", "tile2_2", "tile2_3"]
    assert cfg.train_views == cfg.predict_views + ["hue0", "hue1"]
    assert ClassifierConfig().train_views[:2] == ClassifierConfig().predict_views
    with pytest.raises(ValueError, match="tile_grids"):
        ClassifierConfig(tile_grids=(0,))


def _local_rust_embeddings(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2 + 4 + 1, 8) views: rust photos carry the rust direction in one tile only."""
    d, views = 8, 7
    x = rng.normal(0, 1, (n, views, d)).astype(np.float32)
    y = np.arange(n) % 2
    rust_tile = 2 + rng.integers(0, 4, n)
    x[y == 1, rust_tile[y == 1], 0] += 4.0  # a strong local signal
    x[y == 1, :2, 0] += 0.3  # diluted in the whole photo
    return x, y


def test_tile_scoring_finds_local_rust_and_survives_save_load(tmp_path, keras_home):
    rng = np.random.default_rng(0)
    x, y = _local_rust_embeddings(80, rng)
    cfg = ClassifierConfig(
        backbone="mobilenet_025",
        image_sizes=(48,),
        tile_grids=(2,),
        n_aug=1,
        C=1.0,
        calibration_folds=3,
    )
    clf = RustClassifier(cfg, weights=None).fit_embeddings(x, y)
    xt, yt = _local_rust_embeddings(60, rng)
    prob = clf.predict_embeddings(xt[:, : len(cfg.predict_views)])
    photo_only = RustClassifier(ClassifierConfig(n_aug=5, C=1.0), weights=None)
    photo_only.fit_embeddings(x, y)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(yt, prob) > 0.95 > roc_auc_score(yt, photo_only.predict_embeddings(xt))
    # the photo's probability is the highest of its own and its tiles'
    head = clf._head_model
    each = np.asarray(head(xt[:, 2:6].reshape(-1, 8))).reshape(60, 4)
    own = np.asarray(head(xt[:, :2].mean(axis=1))).reshape(-1)
    np.testing.assert_allclose(prob, np.maximum(own, each.max(axis=1)), rtol=1e-5)
    with pytest.raises(ValueError, match="scores 6"):
        clf.predict_embeddings(xt[:, :2])
    clf.save(tmp_path / "c")  # the config (tile grids) travels with the artifact
    loaded = RustClassifier.load(tmp_path / "c")
    assert loaded.config.tile_grids == (2,)
    np.testing.assert_array_equal(loaded.predict_embeddings(xt[:, :6]), prob)
