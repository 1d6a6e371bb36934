"""The rust detector on tiny synthetic photos: boxes, augmentation, persistence, bad input.

One small detector is trained once per module (64 px, MobileNet 0.25, 2 epochs)
and shared: training quality is the benchmark's job
(benchmarks/detector_bench.py), these tests check behaviour.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ml.detector import (
    DetectorConfig,
    DetectorInputError,
    DetSample,
    RustDetector,
    augment_sample,
    detection_uncertainty,
    letterbox,
    train_detector,
)

RUST = (150, 60, 20)
PAINT = (200, 200, 200)


def tiny_config(**kw) -> DetectorConfig:
    base = dict(
        backbone="mobilenet_025",
        image_size=64,
        max_level=5,
        epochs=2,
        batch_size=4,
        predict_batch=2,
        fpn_width=16,
        head_width=16,
        head_layers=1,
    )
    return DetectorConfig(**{**base, **kw})


def photo(path: Path, size: tuple[int, int], box: tuple[int, int, int, int]) -> DetSample:
    """A grey photo (width, height) with one rust-coloured rectangle at `box` (xyxy)."""
    w, h = size
    img = np.full((h, w, 3), PAINT, np.uint8)
    x0, y0, x1, y1 = box
    img[y0:y1, x0:x1] = RUST
    Image.fromarray(img).save(path, quality=95)
    return DetSample(path, np.array([box], np.float32))


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> list[DetSample]:
    d = tmp_path_factory.mktemp("det")
    rng = np.random.default_rng(0)
    out = []
    for i in range(6):
        w, h = int(rng.integers(90, 160)), int(rng.integers(60, 120))
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        out.append(photo(d / f"rust.{i}.jpg", (w, h), (x0, y0, x0 + w // 3, y0 + h // 3)))
    return out


def imagenet_file(keras_home: Path) -> str:
    # the file's path: KERAS_HOME only counts if it is set before keras is imported
    return str(keras_home / "models" / "mobilenet_2_5_224_tf_no_top.h5")


@pytest.fixture(scope="module")
def trained(samples, keras_home) -> RustDetector:
    cfg = tiny_config(warmup_epochs=0)
    return train_detector(samples, cfg, weights=imagenet_file(keras_home), progress=False)


@pytest.fixture(scope="module")
def trained_map(samples, keras_home) -> RustDetector:
    """A tiny score-map detector (frozen ImageNet backbone), enough epochs to find the patch."""
    cfg = tiny_config(family="scoremap", epochs=12, learning_rate=3e-3, warmup_epochs=0)
    return train_detector(samples, cfg, weights=imagenet_file(keras_home), progress=False)


@pytest.mark.parametrize("family", ["retinanet", "scoremap"])
def test_config_round_trips_through_json_and_rejects_typos(family):
    cfg = tiny_config(family=family, aspect_ratios=(1.0, 2.0), box_thresholds=(0.4,))
    again = DetectorConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ValueError, match=r"unknown detector config keys: imgsize \(known: "):
        DetectorConfig.from_dict({"imgsize": 3})
    with pytest.raises(ValueError, match="unknown detector family 'yolo'"):
        DetectorConfig(family="yolo")


def test_family_defaults_fill_what_the_config_leaves_open():
    assert (DetectorConfig().train_backbone, DetectorConfig().epochs) == (True, 60)
    cfg = DetectorConfig(family="scoremap")
    assert (cfg.train_backbone, cfg.epochs) == (False, 30)
    assert DetectorConfig(family="scoremap", train_backbone=True, epochs=3).train_backbone
    assert DetectorConfig(family="scoremap", image_size=224).image_size == 224  # needs 32 only
    with pytest.raises(ValueError, match="multiple of 128"):
        DetectorConfig(image_size=200)
    with pytest.raises(ValueError, match="unknown backbone"):
        DetectorConfig(backbone="resnet9000")


def _rust_share(canvas: np.ndarray, box: np.ndarray) -> float:
    """Share of pixels inside `box` (canvas coordinates) that look like the rust rectangle."""
    x0, y0, x1, y1 = np.clip(np.round(box).astype(int), 0, canvas.shape[0])
    region = canvas[y0:y1, x0:x1].reshape(-1, 3)
    close = np.abs(region - np.array(RUST)).max(axis=1) < 30
    return float(close.mean()) if len(region) else 0.0


def test_augmentation_moves_boxes_with_the_object(samples):
    """Flip, crop and zoom move the box exactly where the rust rectangle went."""
    import tensorflow as tf

    tf.random.set_seed(1)
    cfg = tiny_config(image_size=128, color=0.0, crop_prob=0.7, crop_min_area=0.3)
    image = np.asarray(Image.open(samples[0].image_path).convert("RGB"))
    kept = ignored = 0
    for _ in range(30):
        canvas, boxes, labels = (
            np.asarray(t) for t in augment_sample(image, samples[0].boxes, cfg, training=True)
        )
        assert canvas.shape == (128, 128, 3)
        if labels[0] == 0:  # kept (mostly visible) box: it covers the object, snugly
            kept += 1
            # 2 px in from each side (JPEG and resizing blur the rectangle's edge)
            assert _rust_share(canvas, boxes[0] + np.array([2, 2, -2, -2])) > 0.95
            assert _rust_share(canvas, boxes[0] + np.array([-8, -8, 8, 8])) < 0.97
        else:  # cropped mostly away: ignored (-2) or gone (-1), never called background
            ignored += 1
            assert labels[0] in (-1, -2)
    assert kept >= 10


def test_flip_alone_mirrors_the_box(samples):
    import tensorflow as tf

    tf.random.set_seed(3)
    s = samples[1]
    w = Image.open(s.image_path).width
    cfg = tiny_config(image_size=128, color=0.0, crop_prob=0.0, zoom_out_min=1.0)
    image = np.asarray(Image.open(s.image_path).convert("RGB"))
    scale = 128 / max(image.shape[:2])
    x0, y0, x1, y1 = s.boxes[0]
    mirrored = np.array([w - x1, y0, w - x0, y1]) * scale
    # the photo is wider than tall: it spans the canvas width (no x offset), and
    # only its vertical place on the canvas is random
    boxes = [np.asarray(augment_sample(image, s.boxes, cfg, True)[1][0]) for _ in range(12)]
    xs = {tuple(np.round(b[[0, 2]], 3)) for b in boxes}
    assert xs == {
        tuple(np.round(s.boxes[0][[0, 2]] * scale, 3)),
        tuple(np.round(mirrored[[0, 2]], 3)),
    }
    for b in boxes:
        assert b[3] - b[1] == pytest.approx((y1 - y0) * scale, abs=1e-3)


def test_letterbox_pads_and_never_crops():
    img = np.zeros((50, 100, 3), np.uint8)
    canvas, scale, ox, oy = (np.asarray(t) for t in letterbox(img, 64))
    assert float(scale) == pytest.approx(0.64)
    assert (ox, oy) == (0, 0)
    assert np.all(canvas[:32, :64] == 0)  # the whole photo, scaled
    assert np.all(canvas[32:] == 127.5)  # grey padding below, nothing cut


def test_predict_gives_boxes_in_original_pixels(trained, samples, tmp_path):
    wide = photo(tmp_path / "wide.jpg", (300, 90), (200, 10, 290, 80))
    array = np.asarray(Image.open(samples[0].image_path))
    out = trained.predict([wide.image_path, array, samples[2].image_path], score_threshold=0.0)
    assert len(out) == 3
    sizes = [(300, 90), array.shape[1::-1], Image.open(samples[2].image_path).size]
    for (boxes, scores), (w, h) in zip(out, sizes, strict=True):
        assert boxes.shape == (len(scores), 4) and len(scores) > 0
        assert np.all(boxes[:, 0] >= 0) and np.all(boxes[:, 2] <= w)
        assert np.all(boxes[:, 1] >= 0) and np.all(boxes[:, 3] <= h)
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
        assert np.all(np.diff(scores) <= 0)  # best first
    high = trained.predict([wide.image_path], score_threshold=0.5)[0][1]
    assert np.all(high >= 0.5)


def test_save_and_load_give_identical_predictions(trained, samples, tmp_path):
    trained.save(tmp_path / "art")
    assert (tmp_path / "art" / "detector.keras").is_file()
    meta = json.loads((tmp_path / "art" / "detector.json").read_text())
    assert meta["config"]["backbone"] == "mobilenet_025"
    assert meta["config"]["family"] == "retinanet"
    assert meta["info"]["train_photos"] == len(samples)
    loaded = RustDetector.load(tmp_path / "art")
    assert loaded.config == trained.config
    paths = [s.image_path for s in samples[:3]]
    for (b1, s1), (b2, s2) in zip(trained.predict(paths), loaded.predict(paths), strict=True):
        np.testing.assert_array_equal(b1, b2)
        np.testing.assert_array_equal(s1, s2)


@pytest.mark.parametrize("family", ["retinanet", "scoremap"])
def test_keras_load_model_of_the_artifact_gives_the_same_numbers(
    family, trained, trained_map, tmp_path
):
    """keras-hub's round trip: `keras.saving.load_model` of the saved file alone rebuilds the
    network (SlimRetinaNet through its get_config/from_config) and predicts the same outputs."""
    import keras

    from ml.detector import register_custom_objects

    det = trained if family == "retinanet" else trained_map
    det.save(tmp_path / family)
    register_custom_objects()
    model = keras.saving.load_model(tmp_path / family / "detector.keras", compile=False)
    assert type(model).__name__ == type(det.model).__name__
    as_json = lambda m: json.loads(json.dumps(m.get_config()))  # noqa: E731 (tuples -> lists)
    assert as_json(model) == as_json(det.model)
    x = np.random.default_rng(5).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")
    before, after = det.model(x, training=False), model(x, training=False)
    if family == "retinanet":
        assert before.keys() == after.keys() == {"bbox_regression", "cls_logits"}
        for key in before:
            np.testing.assert_allclose(np.asarray(after[key]), np.asarray(before[key]), atol=1e-6)
    else:
        assert np.asarray(after).shape == (2, 8, 8, 1)
        np.testing.assert_allclose(np.asarray(after), np.asarray(before), atol=1e-6)


def test_a_damaged_artifact_is_a_clear_error(trained, tmp_path):
    trained.save(tmp_path / "art")
    meta = json.loads((tmp_path / "art" / "detector.json").read_text())
    meta["config"]["anchor_sise"] = 3
    (tmp_path / "art" / "detector.json").write_text(json.dumps(meta))
    with pytest.raises(DetectorInputError, match="unknown detector config keys: anchor_sise"):
        RustDetector.load(tmp_path / "art")
    del meta["config"]["anchor_sise"]
    (tmp_path / "art" / "detector.json").write_text(json.dumps(meta))
    (tmp_path / "art" / "detector.keras").write_bytes(b"not a zip")
    with pytest.raises(DetectorInputError, match=r"detector\.keras: cannot load"):
        RustDetector.load(tmp_path / "art")


def test_training_keeps_batchnorm_frozen_and_trains_the_backbone(trained, keras_home):
    """From ImageNet weights: convolutions move, BatchNorm statistics stay."""
    import keras

    from ml.backbones import build_backbone
    from ml.detector import build_model

    det = trained
    backbone = build_backbone(det.config.backbone, 64, imagenet_file(keras_home))
    imagenet = {layer.name: layer for layer in backbone.layers}
    bn = [
        layer
        for layer in det.model.encoder.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert bn
    for layer in bn:
        np.testing.assert_array_equal(
            layer.moving_mean.numpy(), imagenet[layer.name].moving_mean.numpy()
        )
    moved = [
        np.abs(layer.kernel.numpy() - imagenet[layer.name].kernel.numpy()).max()
        for layer in det.model.encoder.layers
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))
    ]
    # gradients reaching the backbone through freshly initialised heads are tiny, but not zero
    assert max(moved) > 1e-6
    frozen = build_model(tiny_config(train_backbone=False), weights=None)
    encoder_vars = {id(v) for v in frozen.encoder.weights}
    assert not any(id(v) in encoder_vars for v in frozen.trainable_weights)
    assert frozen.classification_head.trainable_weights
    assert det.info["history"]["loss"] and np.isfinite(det.info["final_loss"])


def test_box_outside_the_image_is_a_clear_error(samples):
    bad = DetSample(samples[0].image_path, np.array([[10, 10, 5000, 40]], np.float32))
    outside = r"rust\.0\.jpg: box 0 .* outside the \d+x\d+ image"
    with pytest.raises(DetectorInputError, match=outside):
        train_detector([samples[1], bad], tiny_config(), weights=None, progress=False)
    empty = DetSample(samples[0].image_path, np.array([[10, 10, 10, 40]], np.float32))
    with pytest.raises(DetectorInputError, match="is empty"):
        train_detector([empty], tiny_config(), weights=None, progress=False)


def test_corrupt_image_is_a_clear_error(samples, tmp_path, trained):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DetectorInputError, match="broken.jpg: cannot read image"):
        train_detector([DetSample(broken, np.zeros((0, 4)))], tiny_config(), weights=None)
    with pytest.raises(DetectorInputError, match="broken.jpg: cannot read image"):
        trained.predict([broken])
    with pytest.raises(DetectorInputError, match=r"image 0: expected an \(H, W, 3\) image"):
        trained.predict([np.zeros((4, 4, 3, 2))])


@pytest.mark.parametrize("family", ["retinanet", "scoremap"])
def test_training_data_streams_from_the_files(tmp_path, family):
    """The input is a tf.data pipeline over file paths that reads each photo when it gets
    there, every epoch: a photo changed on disk between two epochs is seen changed (a set
    decoded into memory up front, or cached, would give the old pixels again)."""
    import tensorflow as tf

    from ml.detector import make_dataset

    samples = [photo(tmp_path / f"p{i}.jpg", (120, 90), (10, 10, 50, 40)) for i in range(3)]
    ds = make_dataset(samples, tiny_config(family=family), training=False)
    assert isinstance(ds, tf.data.Dataset)
    ((first, _),) = ds.take(1)
    Image.fromarray(np.full((90, 120, 3), RUST, np.uint8)).save(samples[1].image_path)
    ((second, _),) = ds.take(1)
    first, second = np.asarray(first), np.asarray(second)
    np.testing.assert_array_equal(first[[0, 2]], second[[0, 2]])
    assert np.abs(first[1] - second[1]).max() > 0.5  # [-1, 1] inputs: the rust is new


def test_photo_that_breaks_while_training_is_named(samples, tmp_path):
    """A photo whose header reads but whose pixels do not fails when the pipeline reaches it,
    with the same error naming the file as the up-front checks."""
    good = samples[0].image_path.read_bytes()
    cut = tmp_path / "truncated.jpg"
    cut.write_bytes(good[: len(good) // 2])
    broken = DetSample(cut, samples[0].boxes)
    with pytest.raises(DetectorInputError, match="truncated.jpg: cannot read image"):
        train_detector([samples[1], broken], tiny_config(epochs=1), weights=None, progress=False)


def test_uncertainty_peaks_at_a_coin_toss():
    assert detection_uncertainty(np.array([0.5, 0.99])) == pytest.approx(1.0)
    assert detection_uncertainty(np.array([])) == 0.0
    assert detection_uncertainty(np.array([0.02, 0.03])) == 0.0  # below the floor: no rust
    assert detection_uncertainty(np.array([0.97])) < 0.25


def spread_heads(model) -> None:
    """Spread the scores and boxes out: a fresh head scores every anchor ~0.01 (near-ties
    that NMS may break either way)."""
    rng = np.random.default_rng(0)
    for part, std in ((model.classification_head, 0.1), (model.box_head, 0.02)):
        for var in part.weights:
            if var.path.endswith("kernel"):
                var.assign(rng.normal(0, std, var.shape).astype("float32"))


def test_fast_predict_matches_keras_hub_decoding(keras_home):
    """predict's top-k pre-selection gives what RetinaNetObjectDetector.decode_predictions gives
    (at 64 px all 756 anchors fit in the top-k, so the two must agree)."""
    import tensorflow as tf

    from ml.detector import build_model

    cfg = tiny_config()
    # ImageNet features (random ones are ~0 in the top layers at 64 px)
    model = build_model(cfg, weights=imagenet_file(keras_home))
    spread_heads(model)
    detector = RustDetector(model, cfg)
    fn = detector._predict_fn(0.01).graph_fn
    x = tf.random.stateless_uniform((2, 64, 64, 3), seed=(1, 2), minval=-1.0, maxval=1.0)
    boxes, scores = fn(x)
    # the library's own decoding, traced too (keras-hub's NMS gives slightly different
    # boxes eagerly than in a graph; predict always runs it in a graph)
    ref = tf.function(lambda x: model.decode_predictions(model(x, training=False), x))(x)
    valid = scores.numpy() > 0
    assert valid.sum() > 10 and np.ptp(scores.numpy()[valid]) > 0.1
    np.testing.assert_allclose(scores.numpy(), ref["confidence"].numpy(), atol=1e-6)
    np.testing.assert_allclose(boxes.numpy()[valid], ref["boxes"].numpy()[valid], atol=1e-3)


def test_flip_tta_pools_both_views_and_is_mirror_symmetric(keras_home):
    """With tta_flip, a photo and its mirror give mirrored boxes with the same scores
    (both pool the same two views), and the pooled set holds what plain predict found."""
    import tensorflow as tf

    from ml.detector import build_model

    cfg = tiny_config(tta_flip=True)
    model = build_model(cfg, weights=imagenet_file(keras_home))
    spread_heads(model)
    detector = RustDetector(model, cfg)
    x = tf.random.stateless_uniform((1, 64, 64, 3), seed=(3, 4), minval=-1.0, maxval=1.0)
    pair = tf.concat([x, tf.reverse(x, axis=[2])], axis=0)
    boxes, scores = (t.numpy() for t in detector._predict_fn(0.01).graph_fn(pair))
    valid = scores[0] > 0
    assert valid.sum() > 10
    np.testing.assert_allclose(scores[1], scores[0], atol=1e-5)
    mirrored = np.stack(
        [64 - boxes[1, :, 2], boxes[1, :, 1], 64 - boxes[1, :, 0], boxes[1, :, 3]], -1
    )
    np.testing.assert_allclose(mirrored[valid], boxes[0][valid], atol=1e-3)

    detector.config.tta_flip = False  # the predict function is rebuilt for the new setting
    plain_scores = detector._predict_fn(0.01).graph_fn(pair)[1].numpy()
    assert plain_scores[0].max() <= scores[0].max() + 1e-6
    assert not np.allclose(plain_scores[1], plain_scores[0], atol=1e-5)


@pytest.mark.parametrize("force_match, positives", [(False, 0), (True, 1)])
def test_force_match_gives_every_box_an_anchor(force_match, positives):
    """A thin streak overlaps no anchor by IoU 0.5: only force_match lets it teach anything,
    and padding rows (label -1) never become rust (keras-hub's own force-matching fails on
    a batch like this one)."""
    from ml.detector import build_model

    model = build_model(tiny_config(force_match=force_match), weights=None)
    images = np.zeros((2, 64, 64, 3), np.float32)
    streak, padding = [2, 30, 62, 33], [0, 0, 1, 1]
    boxes = np.array([[streak, padding], [streak, streak]], np.float32)
    labels = np.array([[0, -1], [0, 0]], np.float32)
    _, classes = model.label_encoder(images, boxes, labels)
    assert np.sum(np.asarray(classes) > -1, axis=1).tolist() == [positives, positives]


def _iou(a, b) -> float:
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def test_score_map_finds_the_rust_patch_and_gives_a_heat_map(trained_map, samples, tmp_path):
    """Held-out photo: the best box sits on the rust rectangle, and the heat map is hotter
    over it than over the paint."""
    held = photo(tmp_path / "held.jpg", (140, 100), (70, 20, 120, 70))
    (boxes, scores), *_ = out = trained_map.predict([held.image_path, samples[0].image_path])
    assert len(out) == 2 and len(scores) > 0
    assert _iou(boxes[0], held.boxes[0]) > 0.3
    heat = out[0].heatmap
    # 64 px canvas, 8 px cells; the 140x100 photo covers 8 x 6 cells of it
    assert heat.shape == (6, 8) and heat.dtype == np.float32
    scale = 8 * 140 / 64  # photo pixels per cell
    ys, xs = np.mgrid[: heat.shape[0], : heat.shape[1]]
    cx, cy = (xs + 0.5) * scale, (ys + 0.5) * scale
    inside = (cx > 70) & (cx < 120) & (cy > 20) & (cy < 70)
    assert heat[inside].mean() > heat[~inside].mean() + 0.2
    assert trained_map.info["family"] == "scoremap"
    # RetinaNet has no heat map; its result unpacks the same way
    assert trained_map.predict([held.image_path])[0].heatmap is not None


@pytest.mark.parametrize("backbone", ["efficientnet_v2_s", "convnext_tiny"])
def test_bigger_backbones_give_a_feature_pyramid_by_config(backbone):
    """EfficientNetV2-S and ConvNeXt-Tiny (keras.applications, weights=None here): their
    pyramid has strides 8, 16, 32, and a detector builds on it."""
    from ml.detector import build_model

    model = build_model(tiny_config(family="scoremap", backbone=backbone), weights=None)
    encoder = model.get_layer("encoder")
    shapes = {k: tuple(v.shape[1:3]) for k, v in encoder.output.items()}
    assert shapes == {"P3": (8, 8), "P4": (4, 4), "P5": (2, 2)}
    x = np.random.default_rng(0).uniform(0, 255, (1, 64, 64, 3)).astype("float32")
    out = np.asarray(model(x, training=False))
    assert out.shape == (1, 8, 8, 1) and np.isfinite(out).all()
