"""The detector network in LiteRT gives the boxes the Keras detector gives."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("ai_edge_litert.interpreter")

TINY = {
    "image_size": 64,
    "max_level": 5,
    "predict_batch": 2,
    "fpn_width": 16,
    "head_width": 16,
    "head_layers": 1,
}


def assert_same_boxes(gb, gs, wb, ws, top: int = 3, px: float = 0.5, score: float = 1e-4) -> None:
    """The `top` best boxes of one runtime are found by the other.

    Below those, the untrained heads give many anchors the same score, and NMS may keep
    a different one of equals in each runtime; the networks' raw outputs are compared
    exactly below, and decoding and NMS are the same code.
    """
    for k in np.argsort(-np.asarray(ws))[:top]:
        found = any(
            abs(gs[j] - ws[k]) <= score and np.abs(gb[j] - wb[k]).max() <= px
            for j in range(len(gb))
        )
        assert found, f"box {wb[k]} ({ws[k]:.5f}) not found by LiteRT"


def test_litert_detector_matches_keras_and_converts_once(tmp_path, keras_home):
    from ml.detector import DetectorConfig, RustDetector
    from ml.detector.interface import build_model
    from ml.serving import LiteRTNetwork, load_detector

    config = DetectorConfig.from_dict(TINY)
    model = build_model(config, weights=None)
    rng = np.random.default_rng(0)
    # untrained heads score every anchor alike; spread the weights so the ranking is real
    model.set_weights(
        [w + rng.normal(0, 0.05, w.shape).astype(w.dtype) for w in model.get_weights()]
    )
    keras_det = RustDetector(model, config)
    keras_det.save(tmp_path / "det")
    photos = [rng.integers(0, 255, (48 + 8 * i, 64, 3), dtype=np.uint8) for i in range(3)]

    lite = load_detector(tmp_path / "det", runtime="litert", cache_dir=tmp_path / "cache")
    assert isinstance(lite.model, LiteRTNetwork)
    want = RustDetector.load(tmp_path / "det").predict(photos, score_threshold=0.0)
    got = lite.predict(photos, score_threshold=0.0)
    assert len(got) == len(photos)
    for (wb, ws), (gb, gs) in zip(want, got, strict=True):
        # how many of the many equal low scores survive NMS may differ: the best ones may not
        assert len(ws) > 0 and len(gs) > 0
        assert_same_boxes(gb, gs, wb, ws)
    assert lite.model.path.is_file()

    # a lone photo (the prediction API's case) runs the network on that photo only, and
    # gets the boxes it gets in a batch
    (alone_b, alone_s), (batch_b, batch_s) = lite.predict(photos[2:], 0.0)[0], got[2]
    np.testing.assert_allclose(alone_b, batch_b, atol=1e-3)
    np.testing.assert_allclose(alone_s, batch_s, atol=1e-5)
    assert sorted(lite.model._interpreters) == [1, 2]

    again = LiteRTNetwork(lite.model._model, config, cache_dir=tmp_path / "cache")
    assert again.path == lite.model.path, "the same weights map to the same converted file"
    x = rng.uniform(-1, 1, (3, 64, 64, 3)).astype(np.float32)
    cls, box = again.forward_numpy(x)  # any batch size, not only predict_batch
    raw = model(x, training=False)
    np.testing.assert_allclose(cls, np.asarray(raw["cls_logits"]), atol=1e-4)
    np.testing.assert_allclose(box, np.asarray(raw["bbox_regression"]), atol=1e-4)
    with pytest.raises(ValueError, match=r"batch of shape \(B, 64, 64, 3\)"):
        again.forward_numpy(np.zeros((1, 32, 32, 3), np.float32))

    assert not isinstance(load_detector(tmp_path / "det", runtime="keras").model, LiteRTNetwork)


def test_litert_threads_setting(monkeypatch):
    """One setting, RUSTWATCH_LITERT_THREADS, sizes every LiteRT interpreter."""
    import os

    from ml import litert

    made = []

    class Recorder:
        def __init__(self, model_content, num_threads):
            made.append(num_threads)

    monkeypatch.setattr("ai_edge_litert.interpreter.Interpreter", Recorder)
    monkeypatch.delenv("RUSTWATCH_LITERT_THREADS", raising=False)
    assert 1 <= litert.litert_threads() == litert.usable_cpus() <= (os.cpu_count() or 1)
    monkeypatch.setenv("RUSTWATCH_LITERT_THREADS", "1")
    litert.interpreter(b"")
    assert made == [1]
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv("RUSTWATCH_LITERT_THREADS", bad)
        with pytest.raises(ValueError, match="RUSTWATCH_LITERT_THREADS must be"):
            litert.litert_threads()


def test_embedder_and_detector_use_the_one_setting():
    """Neither network builds its own interpreter: both go through ml.litert."""
    import inspect

    from ml import embeddings, serving

    for module in (embeddings, serving):
        source = inspect.getsource(module)
        assert "num_threads" not in source and "ml.litert import interpreter" in source


def test_a_large_photo_file_is_read_as_training_reads_it(tmp_path):
    """A 2400 px JPEG is decoded shrunk (JPEG draft, then to 2x the model size), never
    whole; the canvas and the scale back to the photo's pixels are those of the full read."""
    from PIL import Image

    from ml.detector import DetectorConfig
    from ml.detector.preprocessing import load_image, prepare_photo, read_side

    config = DetectorConfig.from_dict(TINY)
    yy, xx = np.mgrid[0:1800, 0:2400]
    smooth = np.stack([xx % 256, yy % 256, (xx + yy) // 20 % 256], -1).astype(np.uint8)
    path = tmp_path / "drone.jpg"
    Image.fromarray(smooth).save(path, quality=95)

    x, scale, (h, w) = prepare_photo(path, 0, config)
    assert (h, w) == (1800, 2400)
    assert scale == pytest.approx(config.image_size / 2400)  # canvas px per photo px
    full, full_scale, _ = prepare_photo(load_image(path), 0, config)
    assert full_scale == pytest.approx(scale)
    # the same picture, to JPEG and resampling noise (inputs are in [-1, 1])
    assert np.abs(np.asarray(x) - np.asarray(full)).mean() < 0.02
    assert read_side(config) == 2 * config.image_size
