"""The score-map family: a dense rust probability per cell from the backbone's features,
turned into boxes by thresholding and connected components.

Rust has no edges and no typical shape, so regressing box corners from anchors
(RetinaNet) is the hard part of detecting it; saying "this patch is rust" is
the easy part, and ImageNet features say it well. This family predicts one rust
logit per `2**map_level` px cell (a small top-down FPN over the backbone's
stride 8/16/32 features, then two 3x3 convs), learnt from masks where a photo
has one (corrosion-vt) and from the filled boxes otherwise, with photos
without boxes as negatives. Boxes are the bounding rectangles of the connected
regions above each of `box_thresholds` (nested regions at several levels),
and, with `box_split`, of each region's hot cores (watershed basins around its
peaks: neighbouring patches merge into one region, their peaks stay apart),
scored by their mean (or max) probability. The map itself is the heat map
inspectors see. The network is a plain functional Keras model (convolutions, bilinear
upsampling, additions), easy to convert to LiteRT.
"""

from __future__ import annotations

import numpy as np

from ml.backbones import build_backbone, get_spec, pyramid_outputs
from ml.detector.config import DetectorConfig
from ml.detector.preprocessing import (
    DetSample,
    augment_sample,
    batched,
    model_input,
    pad_batch,
    photo_dataset,
)

_LOSS_CLS = None


def stride(config: DetectorConfig) -> int:
    return 2**config.map_level


def build_model(config: DetectorConfig, weights: str | None = "imagenet", *, mixed: bool = False):
    """The untrained score-map network: preprocessed (S, S, 3) -> (S/stride, S/stride, 1) logits."""
    import keras

    spec = get_spec(config.backbone)
    base = build_backbone(config.backbone, config.image_size, weights)
    base.trainable = config.train_backbone
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # frozen BN (inference mode), as in the RetinaNet family
    names = [f"P{level}" for level in range(config.map_level, 6)]
    pyramid = pyramid_outputs(base, spec)
    encoder = keras.Model(base.inputs, {n: pyramid[n] for n in names}, name="encoder")
    images = keras.Input((config.image_size, config.image_size, 3), name="images")
    feats = encoder(images)
    w = config.map_width
    x = keras.layers.Conv2D(w, 1, name=f"lateral_{names[-1]}")(feats[names[-1]])
    for name in reversed(names[:-1]):
        up = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"up_to_{name}")(x)
        lateral = keras.layers.Conv2D(w, 1, name=f"lateral_{name}")(feats[name])
        x = keras.layers.Add(name=f"merge_{name}")([up, lateral])
    for i in range(2):
        x = keras.layers.Conv2D(w, 3, padding="same", activation="relu", name=f"map_conv{i}")(x)
    logits = keras.layers.Conv2D(
        1,
        1,
        bias_initializer=keras.initializers.Constant(-2.0),  # start near "mostly clean"
        dtype="float32" if mixed else None,
        name="rust_logits",
    )(x)
    return keras.Model(images, logits, name="rust_scoremap")


def _targets(boxes, labels, mask_canvas, has_mask, config: DetectorConfig):
    """(m, m, 2) training target per cell: rust share (0..1) and loss weight.

    With a mask: the share of rust pixels in the cell. Otherwise 1 where the cell's
    centre lies in a rust box, and weight 0 where it lies only in an ignored box
    (cropped mostly away), so the remains of a box are neither rust nor clean.
    """
    import tensorflow as tf

    s = stride(config)
    m = config.image_size // s
    from_mask = tf.image.resize(mask_canvas[..., None], (m, m), method="area")[..., 0]
    centres = (tf.range(m, dtype=tf.float32) + 0.5) * s
    cx, cy = centres[None, :, None], centres[:, None, None]  # (1, m, 1) and (m, 1, 1)
    inside = (
        (cx >= boxes[:, 0]) & (cx < boxes[:, 2]) & (cy >= boxes[:, 1]) & (cy < boxes[:, 3])
    )  # (m, m, N)
    rust = tf.reduce_any(inside & (labels == 0.0), axis=-1)
    ignore = tf.reduce_any(inside & (labels == -2.0), axis=-1) & ~rust
    target = tf.where(has_mask, from_mask, tf.cast(rust, tf.float32))
    weight = tf.where(has_mask, tf.ones_like(target), 1.0 - tf.cast(ignore, tf.float32))
    return tf.stack([target, weight], axis=-1)


def make_dataset(
    samples: list[DetSample], config: DetectorConfig, *, training: bool, repeat_seed: int = 0
):
    """A `tf.data.Dataset` of (preprocessed images, (m, m, 2) cell targets) batches, streamed
    from the photo and mask files (`photo_dataset`)."""

    def prepare(image, boxes, mask, has_mask):
        canvas, boxes, labels, mask_canvas = augment_sample(
            image, boxes, config, training, mask=mask
        )
        return model_input(config, canvas), _targets(boxes, labels, mask_canvas, has_mask, config)

    ds = photo_dataset(samples, config, training=training, seed=repeat_seed, masks=True)
    return batched(ds, config, prepare)


def loss_class():
    """The weighted per-cell sigmoid cross-entropy (a registered Keras loss)."""
    global _LOSS_CLS
    if _LOSS_CLS is not None:
        return _LOSS_CLS
    import keras
    from keras import ops

    @keras.saving.register_keras_serializable(package="rustwatch")
    class ScoreMapLoss(keras.losses.Loss):
        """Cross-entropy of each cell's logit against its rust share, weighted by the
        target's weight channel, rust cells `pos_weight` times more; mean per photo."""

        def __init__(self, pos_weight: float = 1.0, name: str = "scoremap_loss", **kwargs):
            super().__init__(name=name, **kwargs)
            self.pos_weight = float(pos_weight)

        def call(self, y_true, y_pred):
            target, weight = y_true[..., 0], y_true[..., 1]
            logits = ops.cast(y_pred[..., 0], "float32")
            bce = ops.maximum(logits, 0) - logits * target + ops.log1p(ops.exp(-ops.abs(logits)))
            w = weight * (1.0 + (self.pos_weight - 1.0) * target)
            return ops.sum(w * bce, axis=(1, 2)) / ops.maximum(ops.sum(weight, axis=(1, 2)), 1.0)

        def get_config(self):
            return {**super().get_config(), "pos_weight": self.pos_weight}

    _LOSS_CLS = ScoreMapLoss
    return ScoreMapLoss


def register() -> None:
    """Register the custom objects (the loss) before keras.saving.load_model."""
    loss_class()


def compile_model(model, config: DetectorConfig, optimizer, jit_compile: bool) -> None:
    model.compile(
        optimizer=optimizer, loss=loss_class()(config.pos_weight), jit_compile=jit_compile
    )


def _nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy NMS, best first (few boxes: plain numpy)."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in order:
        if keep:
            k = np.asarray(keep)
            x0 = np.maximum(boxes[i, 0], boxes[k, 0])
            y0 = np.maximum(boxes[i, 1], boxes[k, 1])
            x1 = np.minimum(boxes[i, 2], boxes[k, 2])
            y1 = np.minimum(boxes[i, 3], boxes[k, 3])
            inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
            if np.any(inter / (area[i] + area[k] - inter) > iou):
                continue
        keep.append(int(i))
    return np.asarray(keep, dtype=int)


def hot_cores(
    prob: np.ndarray, regions: list[np.ndarray], config: DetectorConfig, cell: int = 1
) -> list[np.ndarray]:
    """Labels (h, w) of the hot cores inside each labelling of `regions` (0: none), e.g. the
    regions above each box threshold.

    Neighbouring rust patches merge into one region above a threshold; their peaks stay
    apart. Each peak (scikit-image `peak_local_max`) at least `split_min_distance` cells
    (`cell` map pixels each) from a higher one of its region, and, with `split_min_depth`,
    standing that far above the saddle to any higher peak (`h_maxima`), seeds a core; the
    cores are the watershed basins of the negated map around those seeds, within the
    regions. A flat top is one seed. A region with one peak is one core (its own box again).
    """
    from scipy import ndimage
    from skimage.feature import peak_local_max
    from skimage.morphology import h_maxima, local_maxima
    from skimage.segmentation import watershed

    # what depends on the map alone is found once for every labelling: the deep peaks, and
    # the flat tops (a saturated patch is one seed, not a peak per pixel)
    deep = None
    if config.split_min_depth > 0:
        deep = h_maxima(prob.astype(np.float64), config.split_min_depth).astype(bool)
    tops, _ = ndimage.label(local_maxima(prob), structure=np.ones((3, 3), bool))
    out = []
    for labels in regions:
        n = int(labels.max())
        if n == 0:
            out.append(np.zeros_like(labels))
            continue
        peaks = peak_local_max(
            prob,
            min_distance=max(1, config.split_min_distance * cell),
            labels=labels,
            exclude_border=False,
        )
        at = tuple(peaks.T)
        if deep is not None:
            # a region's highest peak has no higher one to stand above: it always seeds
            top = np.asarray(ndimage.maximum(prob, labels, np.arange(1, n + 1)))
            peaks = peaks[deep[at] | (prob[at] >= top[labels[at] - 1])]
            at = tuple(peaks.T)
        # seeds: the flat tops that hold a kept peak; a peak on a shoulder (a flat step
        # below a higher part of the region) seeds nothing
        seeds = np.unique(tops[at])
        seeds = seeds[seeds > 0]
        inside = labels > 0
        markers = np.where(np.isin(tops, seeds) & inside, np.searchsorted(seeds, tops) + 1, 0)
        out.append(watershed(-prob, markers, mask=inside))
    return out


def boxes_from_map(
    prob: np.ndarray, config: DetectorConfig, upsample: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (M, 4) xyxy and scores (M,) from a (h, w) rust probability map.

    The map is first upsampled (bilinear) by `upsample`, so box edges fall between
    cells; boxes are in the upsampled map's pixels. Regions are 8-connected; with
    `box_split` "watershed" each region's hot cores (`hot_cores`) get boxes too, nested
    in the region's. A box scores the mean (`box_score`) or max probability inside its
    region or core. Boxes found at several thresholds, or as a region and its only core,
    with nearly the same box (IoU > 0.9) are kept once.
    """
    from scipy import ndimage

    prob = np.asarray(prob, dtype=np.float32)
    if upsample > 1:
        prob = np.clip(ndimage.zoom(prob, upsample, order=1, grid_mode=True, mode="nearest"), 0, 1)
    min_cells = max(1.0, config.min_region * prob.size)
    score_of = ndimage.mean if config.box_score == "mean" else ndimage.maximum
    found_boxes, found_scores = [], []
    structure = np.ones((3, 3), bool)
    regions = [ndimage.label(prob >= t, structure=structure)[0] for t in config.box_thresholds]
    labelings = list(regions)
    if config.box_split == "watershed":
        labelings += hot_cores(prob, regions, config, cell=upsample)
    for labels in labelings:
        n = int(labels.max())
        if n == 0:
            continue
        index = np.arange(1, n + 1)
        sizes = ndimage.sum_labels(np.ones_like(prob), labels, index)
        scores = score_of(prob, labels, index)
        for k, region in enumerate(ndimage.find_objects(labels)):
            if region is None or sizes[k] < min_cells:
                continue
            ys, xs = region
            found_boxes.append((xs.start, ys.start, xs.stop, ys.stop))
            found_scores.append(scores[k])
    if not found_boxes:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    boxes = np.asarray(found_boxes, np.float32)
    scores = np.asarray(found_scores, np.float32)
    keep = _nms(boxes, scores, 0.9)[: config.max_detections]
    return boxes[keep], scores[keep]


def make_predictor(model, config: DetectorConfig, threshold: float):
    """A function of 1..`predict_batch` network inputs (n, S, S, 3) -> per photo (boxes
    (M, 4) in canvas pixels, scores (M,), heat map (S/stride, S/stride) rust probability);
    the traced network has a fixed batch, so fewer photos are padded to it."""
    import tensorflow as tf

    size = config.image_size
    spec = tf.TensorSpec((config.predict_batch, size, size, 3), tf.float32)
    tta_flip = config.tta_flip

    @tf.function(input_signature=[spec])
    @tf.autograph.experimental.do_not_convert
    def fn(x):
        prob = tf.sigmoid(tf.cast(model(x, training=False), tf.float32))[..., 0]
        if tta_flip:
            mirrored = model(tf.reverse(x, axis=[2]), training=False)
            mirrored = tf.sigmoid(tf.cast(mirrored, tf.float32))[..., 0]
            prob = (prob + tf.reverse(mirrored, axis=[2])) / 2
        return prob

    s = stride(config)

    def predict(batch):  # 1..predict_batch photos
        maps = np.asarray(fn(pad_batch(batch, config.predict_batch)), np.float32)[: len(batch)]
        out = []
        for prob in maps:
            boxes, scores = boxes_from_map(prob, config, upsample=s)
            out.append((boxes, scores, prob))
        return out

    predict.graph_fn = fn
    return predict
