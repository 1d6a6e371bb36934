"""Rust detector: keras-hub RetinaNet over a `keras.applications` feature pyramid.

The library does the detection work (anchors, IoU matching and box encoding,
focal loss, box decoding, non-max suppression, the FPN and prediction heads);
this module wires it to our backbones and data, and keeps the API in VOC
terms: boxes are xyxy in pixels of the ORIGINAL photo, in and out. Photos are
letterboxed (scaled so the long side fits, padded to a square), never cropped,
so no box is lost at prediction time.

Why the model is built here rather than with `RetinaNetObjectDetector(...)`
directly: keras-hub fixes the FPN and head widths at 256, which makes the heads
~98 % of the compute at our image sizes; on a 2-core CPU that leaves too few
epochs. `SlimRetinaNet` is the same RetinaNet (same class, loss, decoder) with
those widths configurable; at 256/256/4 it is the library's architecture. It
also applies the fixes found by ../shared/notes/retinanet-probe.md: head
kernels N(0, 0.01) with the focal prior bias on the *classification* head,
an L1 box loss with weight ~4, a low NMS confidence threshold for evaluation,
and a fixed-batch `tf.function` for prediction.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from ml.backbones import build_backbone, get_spec

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MODEL_FILE = "detector.keras"
META_FILE = "detector.json"
PAD_PIXEL = 127.5  # letterbox padding (raw 0..255 scale): mid-grey, 0 after [-1, 1] scaling
_NO_BOX = (0.0, 0.0, 1.0, 1.0)  # placeholder for padding rows: tiny, never matches an anchor
_SLIM_CLS = None  # the keras-hub subclass, defined on first use (keeps imports cheap)


class DetectorInputError(ValueError):
    """Input the detector cannot use (unreadable image, box outside it); names the file."""


class DetSample(NamedTuple):
    """One training/evaluation photo: its path and rust boxes (N, 4) xyxy in original pixels."""

    image_path: Path
    boxes: np.ndarray


@dataclass
class DetectorConfig:
    """Everything that defines a detector and how it is trained (JSON-serialisable)."""

    backbone: str = "mobilenet_v2_035"
    image_size: int = 384
    epochs: int = 60
    batch_size: int = 8
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: float = 2.0
    train_backbone: bool = True  # BatchNorm stays frozen either way
    # architecture (keras-hub RetinaNet: 256 / 256 / 4)
    fpn_width: int = 64
    head_width: int = 64
    head_layers: int = 2
    min_level: int = 3
    max_level: int = 7
    # smallest anchor = anchor_size * 8 px: 24 px, as a quarter of the seed boxes are < 35 px
    # at 384 px (keras-hub and the probe use 4; 3 lifted AP50 0.19 -> 0.33 in experiment e3)
    anchor_size: float = 3.0
    num_scales: int = 3
    aspect_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
    positive_iou: float = 0.5
    negative_iou: float = 0.4
    # also make each box's best anchor positive when none reaches positive_iou (12 % of the
    # seed boxes at 384 px); off: it halved the article-split AP50 (experiment e6b)
    force_match: bool = False
    # loss
    box_loss_weight: float = 4.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    # augmentation (all box-preserving; see augment_sample)
    augment: bool = True
    flip: bool = True
    crop_prob: float = 0.5
    crop_min_area: float = 0.3
    min_visible: float = 0.5  # boxes less visible than this after a crop are ignored
    zoom_out_min: float = 0.6
    color: float = 1.0  # strength of brightness/contrast/saturation/hue jitter
    # prediction
    nms_iou: float = 0.5
    max_detections: int = 100
    pre_nms_top_k: int = 1000
    predict_batch: int = 4
    # test-time augmentation: also look at the mirrored photo and pool the candidate boxes
    # of both views before NMS (twice the forward cost)
    tta_flip: bool = False
    mixed_precision: bool | None = None  # None: on when a GPU is visible
    seed: int = 0

    def __post_init__(self) -> None:
        get_spec(self.backbone)  # unknown backbone -> ValueError listing the known ones
        self.aspect_ratios = tuple(float(a) for a in self.aspect_ratios)
        if self.image_size < 32 or self.image_size % 2**self.max_level:
            # keras-hub's FPN upsamples by 2 per level: sizes must divide evenly
            raise ValueError(
                f"image_size must be a multiple of {2**self.max_level} (got {self.image_size})"
            )
        if self.epochs < 0 or self.batch_size < 1 or self.predict_batch < 1:
            raise ValueError("epochs must be >= 0, batch_size and predict_batch >= 1")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectorConfig:
        """Inverse of `dataclasses.asdict`; unknown keys are an error (a typo should not pass)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown detector config keys: {', '.join(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["aspect_ratios"] = list(self.aspect_ratios)
        return data


# --------------------------------------------------------------------- inputs


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Decode a photo to an (H, W, 3) uint8 RGB array; errors name the file."""
    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(img.convert("RGB"))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise DetectorInputError(f"{path}: cannot read image: {exc}") from exc


def as_rgb(image: np.ndarray, where: str = "image") -> np.ndarray:
    """Accept (H, W), (H, W, 1|3|4) arrays; return (H, W, 3) uint8-range float-free RGB."""
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = np.stack([arr] * 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (1, 3, 4) or min(arr.shape[:2]) < 1:
        raise DetectorInputError(f"{where}: expected an (H, W, 3) image, got shape {arr.shape}")
    if arr.shape[-1] == 1:
        arr = np.repeat(arr, 3, axis=-1)
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return arr


def check_boxes(boxes: Any, width: int, height: int, where: str) -> np.ndarray:
    """Validate boxes against their image; return them as (N, 4) float32 xyxy.

    0..width and 0..height are inside (VOC/labelImg write both 0 and width).
    """
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4), np.float32)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise DetectorInputError(f"{where}: boxes must be (N, 4) xyxy, got shape {arr.shape}")
    for i, (x0, y0, x1, y1) in enumerate(arr):
        if not np.all(np.isfinite([x0, y0, x1, y1])) or not (x0 < x1 and y0 < y1):
            raise DetectorInputError(f"{where}: box {i} ({x0:g},{y0:g},{x1:g},{y1:g}) is empty")
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            raise DetectorInputError(
                f"{where}: box {i} ({x0:g},{y0:g},{x1:g},{y1:g}) is outside the "
                f"{width}x{height} image"
            )
    return arr.astype(np.float32)


# ---------------------------------------------------------------- tf.data side


def letterbox(image, size: int, zoom=1.0, offset=(0, 0)):
    """Scale a (H, W, 3) tensor so its long side is `size * zoom`; paste at `offset` on a
    `size` square padded with mid-grey. Returns (canvas float32 0..255, scale)."""
    import tensorflow as tf

    image = tf.cast(image, tf.float32)
    h = tf.cast(tf.shape(image)[0], tf.float32)
    w = tf.cast(tf.shape(image)[1], tf.float32)
    scale = tf.cast(size, tf.float32) * zoom / tf.maximum(h, w)
    nh = tf.clip_by_value(tf.cast(tf.round(h * scale), tf.int32), 1, size)
    nw = tf.clip_by_value(tf.cast(tf.round(w * scale), tf.int32), 1, size)
    resized = tf.image.resize(image, tf.stack([nh, nw]), antialias=True)
    oy = tf.minimum(tf.cast(offset[1], tf.int32), size - nh)
    ox = tf.minimum(tf.cast(offset[0], tf.int32), size - nw)
    canvas = tf.image.pad_to_bounding_box(resized - PAD_PIXEL, oy, ox, size, size) + PAD_PIXEL
    return canvas, scale, tf.cast(ox, tf.float32), tf.cast(oy, tf.float32)


def augment_sample(image, boxes, config: DetectorConfig, training: bool):
    """Box-preserving augmentation of one photo in TF ops.

    Horizontal flip, random crop (boxes clipped; a box left less than
    `min_visible` of its area is marked ignore (-2) so the anchors on its
    remains are neither rust nor background), zoom-out with a random place on
    the letterbox canvas, colour jitter. Returns (canvas 0..255, boxes, labels)
    with labels 0 = rust, -2 = ignore, -1 = no box.
    """
    import tensorflow as tf

    image = tf.cast(image, tf.float32)
    boxes = tf.reshape(tf.cast(boxes, tf.float32), (-1, 4))
    h = tf.cast(tf.shape(image)[0], tf.float32)
    w = tf.cast(tf.shape(image)[1], tf.float32)
    labels = tf.zeros(tf.shape(boxes)[:1], tf.float32)
    size = config.image_size
    if not (training and config.augment):
        canvas, scale, _, _ = letterbox(image, size)
        return canvas, boxes * scale, labels

    if config.flip:
        flip = tf.random.uniform(()) < 0.5
        image = tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image)
        flipped = tf.stack([w - boxes[:, 2], boxes[:, 1], w - boxes[:, 0], boxes[:, 3]], axis=1)
        boxes = tf.where(flip, flipped, boxes)

    if config.crop_prob > 0:
        area = tf.random.uniform((), config.crop_min_area, 1.0)
        aspect = tf.exp(tf.random.uniform((), math.log(3 / 4), math.log(4 / 3)))
        cw = tf.minimum(w, tf.round(w * tf.sqrt(area * aspect)))
        ch = tf.minimum(h, tf.round(h * tf.sqrt(area / aspect)))
        do_crop = tf.random.uniform(()) < config.crop_prob
        cw = tf.where(do_crop, tf.maximum(cw, 1.0), w)
        ch = tf.where(do_crop, tf.maximum(ch, 1.0), h)
        x0 = tf.floor(tf.random.uniform(()) * (w - cw + 1))
        y0 = tf.floor(tf.random.uniform(()) * (h - ch + 1))
        image = tf.image.crop_to_bounding_box(
            image,
            tf.cast(y0, tf.int32),
            tf.cast(x0, tf.int32),
            tf.cast(ch, tf.int32),
            tf.cast(cw, tf.int32),
        )
        shifted = boxes - tf.stack([x0, y0, x0, y0])
        clipped = tf.stack(
            [
                tf.clip_by_value(shifted[:, 0], 0.0, cw),
                tf.clip_by_value(shifted[:, 1], 0.0, ch),
                tf.clip_by_value(shifted[:, 2], 0.0, cw),
                tf.clip_by_value(shifted[:, 3], 0.0, ch),
            ],
            axis=1,
        )
        full = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        left = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
        visible = left / tf.maximum(full, 1e-6)
        labels = tf.where(visible >= config.min_visible, 0.0, tf.where(left > 0, -2.0, -1.0))
        boxes = tf.where((labels == -1.0)[:, None], tf.constant(_NO_BOX), clipped)
        h, w = ch, cw

    zoom = tf.random.uniform((), config.zoom_out_min, 1.0)
    scale = size * zoom / tf.maximum(h, w)
    free_x = tf.maximum(size - tf.round(w * scale), 0.0)
    free_y = tf.maximum(size - tf.round(h * scale), 0.0)
    offset = (
        tf.floor(tf.random.uniform(()) * (free_x + 1)),
        tf.floor(tf.random.uniform(()) * (free_y + 1)),
    )
    canvas, scale, ox, oy = letterbox(image, size, zoom, offset)
    boxes = tf.where(
        (labels == -1.0)[:, None], tf.constant(_NO_BOX), boxes * scale + tf.stack([ox, oy, ox, oy])
    )

    if config.color > 0:
        s = config.color
        x = canvas / 255.0
        x = tf.image.random_brightness(x, 0.12 * s)
        x = tf.image.random_contrast(x, 1 - 0.25 * s, 1 + 0.25 * s)
        x = tf.image.random_saturation(x, 1 - 0.3 * s, 1 + 0.3 * s)
        x = tf.image.random_hue(x, 0.02 * s)  # rust is a colour: keep hue shifts small
        canvas = tf.clip_by_value(x, 0.0, 1.0) * 255.0
    return canvas, boxes, labels


def _pad_boxes(boxes, labels, max_boxes: int):
    import tensorflow as tf

    n = tf.shape(boxes)[0]
    fill = tf.tile(tf.constant([_NO_BOX]), [max_boxes - n, 1])
    boxes = tf.concat([boxes, fill], axis=0)
    labels = tf.concat([labels, -tf.ones([max_boxes - n])], axis=0)
    boxes.set_shape([max_boxes, 4])
    labels.set_shape([max_boxes])
    return boxes, labels


def _decoded(samples: list[DetSample], max_side: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Decode and validate training photos once, shrunk to `max_side` (boxes scaled along)."""
    out = []
    for s in samples:
        image = load_image(s.image_path)
        h, w = image.shape[:2]
        boxes = check_boxes(s.boxes, w, h, str(s.image_path))
        if max(h, w) > max_side:
            r = max_side / max(h, w)
            size = (max(1, round(w * r)), max(1, round(h * r)))
            image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
            boxes = boxes * np.array([size[0] / w, size[1] / h] * 2, np.float32)
        out.append((image, boxes))
    return out


def make_dataset(
    samples: list[DetSample], config: DetectorConfig, *, training: bool, repeat_seed: int = 0
):
    """A `tf.data.Dataset` of (preprocessed images, {"boxes", "labels"}) batches."""
    import tensorflow as tf

    from ml.backbones import preprocess

    # keep up to 2x the model size so crops keep some detail
    decoded = _decoded(samples, max_side=2 * config.image_size)
    max_boxes = max([1] + [len(b) for _, b in decoded])

    def gen():
        yield from decoded

    ds = (
        tf.data.Dataset.from_generator(
            gen,
            output_signature=(
                tf.TensorSpec((None, None, 3), tf.uint8),
                tf.TensorSpec((None, 4), tf.float32),
            ),
        )
        .apply(tf.data.experimental.assert_cardinality(len(decoded)))
        .cache()
    )
    if training:
        ds = ds.shuffle(len(decoded), seed=config.seed + repeat_seed, reshuffle_each_iteration=True)

    def prepare(image, boxes):
        canvas, boxes, labels = augment_sample(image, boxes, config, training)
        boxes, labels = _pad_boxes(boxes, labels, max_boxes)
        x = preprocess(config.backbone, canvas)
        x.set_shape((config.image_size, config.image_size, 3))
        return x, {"boxes": boxes, "labels": labels}

    ds = ds.map(prepare, num_parallel_calls=2)
    return ds.batch(config.batch_size).prefetch(2)


# ---------------------------------------------------------------------- model


def _register():
    """Define the keras-hub subclass lazily so importing ml.detector stays cheap."""
    global _SLIM_CLS
    if _SLIM_CLS is not None:
        return _SLIM_CLS
    import keras
    from keras_hub.models import ObjectDetector, RetinaNetObjectDetector
    from keras_hub.src.models.retinanet.feature_pyramid import FeaturePyramid
    from keras_hub.src.models.retinanet.prediction_head import PredictionHead

    @keras.saving.register_keras_serializable(package="rustwatch")
    class SlimRetinaNet(RetinaNetObjectDetector):
        """keras-hub RetinaNet with configurable FPN/head widths over a pyramid encoder.

        `encoder` is a `keras.Model` whose outputs are a dict {"P3", "P4", "P5"}.
        Loss (`compute_loss`), decoding and NMS are RetinaNetObjectDetector's.
        """

        def __init__(
            self,
            encoder,
            num_classes,
            anchor_generator,
            label_encoder,
            prediction_decoder,
            min_level=3,
            max_level=7,
            fpn_width=256,
            head_width=256,
            head_layers=4,
            image_shape=(None, None, 3),
            head_dtype=None,
            **kwargs,
        ):
            image_input = keras.layers.Input(image_shape, name="images")
            fpn = FeaturePyramid(
                min_level=min_level,
                max_level=max_level,
                use_p5=False,
                num_filters=fpn_width,
                name="fpn",
            )
            feature_map = fpn(encoder(image_input))
            init = keras.initializers.RandomNormal(stddev=0.01)
            box_head = PredictionHead(
                output_filters=anchor_generator.num_base_anchors * 4,
                num_filters=head_width,
                num_conv_layers=head_layers,
                kernel_initializer=init,
                dtype=head_dtype,
                name="box_head",
            )
            classification_head = PredictionHead(
                output_filters=anchor_generator.num_base_anchors * num_classes,
                num_filters=head_width,
                num_conv_layers=head_layers,
                use_prior_probability=True,
                prior_probability=0.01,
                kernel_initializer=init,
                dtype=head_dtype,
                name="classification_head",
            )
            boxes, logits = [], []
            for level in feature_map:
                boxes.append(
                    keras.layers.Reshape((-1, 4), name=f"box_pred_{level}")(
                        box_head(feature_map[level])
                    )
                )
                logits.append(
                    keras.layers.Reshape((-1, num_classes), name=f"cls_pred_{level}")(
                        classification_head(feature_map[level])
                    )
                )
            outputs = {
                "bbox_regression": keras.layers.Concatenate(axis=1, name="bbox_regression")(boxes),
                "cls_logits": keras.layers.Concatenate(axis=1, name="cls_logits")(logits),
            }
            # skip RetinaNetObjectDetector.__init__ (it hard-codes 256 widths), keep the rest
            ObjectDetector.__init__(self, inputs=image_input, outputs=outputs, **kwargs)
            self.bounding_box_format = "xyxy"
            self.use_prediction_head_norm = False
            self.num_classes = num_classes
            self.preprocessor = None
            self.activation = None
            self.pre_logits_num_conv_layers = head_layers
            self.encoder = encoder
            self.fpn = fpn
            self.box_head = box_head
            self.classification_head = classification_head
            self.anchor_generator = anchor_generator
            self.label_encoder = label_encoder
            self._prediction_decoder = prediction_decoder
            self._slim = {
                "num_classes": num_classes,
                "min_level": min_level,
                "max_level": max_level,
                "fpn_width": fpn_width,
                "head_width": head_width,
                "head_layers": head_layers,
                "image_shape": tuple(image_shape),
            }

        def get_config(self):
            return {
                "name": self.name,
                **self._slim,
                "encoder": keras.layers.serialize(self.encoder),
                "anchor_generator": keras.layers.serialize(self.anchor_generator),
                "label_encoder": keras.layers.serialize(self.label_encoder),
                "prediction_decoder": keras.layers.serialize(self._prediction_decoder),
            }

        @classmethod
        def from_config(cls, config):
            config = dict(config)
            for key in ("encoder", "anchor_generator", "prediction_decoder"):
                config[key] = keras.layers.deserialize(config[key])
            config["label_encoder"] = keras.layers.deserialize(config["label_encoder"])
            return cls(**config)

    _SLIM_CLS = SlimRetinaNet
    return SlimRetinaNet


def gpu_visible() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _make_decoder(config: DetectorConfig, confidence: float):
    from keras_hub.layers import NonMaxSuppression

    return NonMaxSuppression(
        bounding_box_format="xyxy",
        from_logits=True,
        iou_threshold=config.nms_iou,
        confidence_threshold=confidence,
        max_detections=config.max_detections,
    )


def _force_matcher(config: DetectorConfig):
    """keras-hub's BoxMatcher, plus each box's best anchor made positive.

    The library's own `force_match_for_each_col` also force-matches the -1 column it pads
    the IoU matrix with, and training then fails on an out-of-range gather (keras-hub
    0.32); here the forcing covers only real boxes (IoU > 0 with some anchor).
    """
    from keras import ops
    from keras_hub.src.layers.modeling.box_matcher import BoxMatcher

    class ForceMatcher(BoxMatcher):
        def call(self, similarity_matrix):
            columns, values = super().call(similarity_matrix)  # (B, anchors)
            rows = ops.shape(similarity_matrix)[1]
            best = ops.argmax(similarity_matrix, axis=1)  # (B, boxes): each box's best anchor
            real = ops.max(similarity_matrix, axis=1) > 0
            pick = ops.one_hot(best, rows) * ops.cast(real, "float32")[..., None]  # (B, boxes, A)
            forced = ops.max(pick, axis=1) > 0
            columns = ops.where(forced, ops.cast(ops.argmax(pick, axis=1), "int32"), columns)
            values = ops.where(forced, ops.ones_like(values) * self.match_values[-1], values)
            return columns, values

    return ForceMatcher(
        thresholds=[config.negative_iou, config.positive_iou], match_values=[-1, -2, 1]
    )


def build_model(config: DetectorConfig, weights: str | None = "imagenet"):
    """The untrained detector for `config`; `weights` go to the backbone only."""
    import keras
    from keras_hub.layers import AnchorGenerator
    from keras_hub.src.models.retinanet.retinanet_label_encoder import RetinaNetLabelEncoder

    cls = _register()
    spec = get_spec(config.backbone)
    mixed = gpu_visible() if config.mixed_precision is None else config.mixed_precision
    previous = keras.config.dtype_policy()
    if mixed:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        base = build_backbone(config.backbone, config.image_size, weights)
        base.trainable = config.train_backbone
        for layer in base.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = False  # frozen BN (inference mode): 8-photo batches are too few
        encoder = keras.Model(
            base.inputs,
            {f"P{i + 3}": base.get_layer(name).output for i, name in enumerate(spec.pyramid)},
            name="encoder",
        )
        anchors = AnchorGenerator(
            "xyxy",
            min_level=config.min_level,
            max_level=config.max_level,
            num_scales=config.num_scales,
            aspect_ratios=list(config.aspect_ratios),
            anchor_size=config.anchor_size,
        )
        label_encoder = RetinaNetLabelEncoder(
            anchors,
            bounding_box_format="xyxy",
            encoding_format="center_xywh",
            positive_threshold=config.positive_iou,
            negative_threshold=config.negative_iou,
        )
        if config.force_match:
            label_encoder.box_matcher = _force_matcher(config)
        model = cls(
            encoder=encoder,
            num_classes=1,
            anchor_generator=anchors,
            label_encoder=label_encoder,
            prediction_decoder=_make_decoder(config, 0.01),
            min_level=config.min_level,
            max_level=config.max_level,
            fpn_width=config.fpn_width,
            head_width=config.head_width,
            head_layers=config.head_layers,
            image_shape=(config.image_size, config.image_size, 3),
            head_dtype="float32" if mixed else None,
            name="rust_retinanet",
        )
    finally:
        keras.config.set_dtype_policy(previous)
    return model


def _compile(model, config: DetectorConfig, steps_per_epoch: int) -> None:
    import keras

    total = max(1, config.epochs * steps_per_epoch)
    warmup = min(int(config.warmup_epochs * steps_per_epoch), total // 2)
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate * (0.1 if warmup else 1.0),
        decay_steps=max(1, total - warmup),
        alpha=0.01,
        warmup_target=config.learning_rate if warmup else None,
        warmup_steps=warmup,
    )
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule, weight_decay=config.weight_decay, global_clipnorm=10.0
    )
    model.compile(
        optimizer=optimizer,
        # XLA compiles this graph for ~a minute on a CPU and gains little there
        jit_compile=gpu_visible(),
        box_loss=keras.losses.MeanAbsoluteError(reduction="sum"),
        classification_loss=keras.losses.BinaryFocalCrossentropy(
            apply_class_balancing=True,
            alpha=config.focal_alpha,
            gamma=config.focal_gamma,
            from_logits=True,
            reduction="sum",
        ),
        loss_weights={"bbox_regression": config.box_loss_weight, "cls_logits": 1.0},
    )


# ------------------------------------------------------------------- detector


def detection_uncertainty(scores: np.ndarray, floor: float = 0.05) -> float:
    """How unsure the detector is about one photo, 0..1 (for the active-learning queue).

    The largest binary entropy (bits) of the box scores above `floor`: a box at
    0.5 is a coin toss (1.0); photos with only confident boxes, or none, score ~0.
    """
    s = np.asarray(scores, dtype=float)
    s = np.clip(s[s >= floor], 1e-6, 1 - 1e-6)
    if s.size == 0:
        return 0.0
    entropy = -(s * np.log2(s) + (1 - s) * np.log2(1 - s))
    return float(entropy.max())


class RustDetector:
    """A trained detector: predict boxes in original pixels, save, load."""

    def __init__(self, model, config: DetectorConfig, info: dict | None = None):
        self.model = model
        self.config = config
        self.info: dict = info or {}
        self._fn = None
        self._fn_key: tuple | None = None  # (decoder threshold, tta_flip) the _fn was built for

    # -- prediction
    def _predict_fn(self, threshold: float):
        import keras
        import tensorflow as tf

        decoder_threshold = min(0.01, threshold)
        key = (decoder_threshold, self.config.tta_flip)
        if self._fn is None or self._fn_key != key:
            self.model._prediction_decoder = _make_decoder(self.config, decoder_threshold)
            model = self.model
            size = self.config.image_size
            spec = tf.TensorSpec((self.config.predict_batch, size, size, 3), tf.float32)

            anchors = model.anchor_generator(tf.zeros((1, size, size, 3)))
            anchors = tf.concat(list(anchors.values()), axis=0)  # (A, 4) xyxy, all levels
            top_k = min(self.config.pre_nms_top_k, int(anchors.shape[0]))

            def candidates(x):
                # RetinaNetObjectDetector.decode_predictions, but only the `pre_nms_top_k`
                # best anchors go on to NMS (as the RetinaNet paper does): NMS over all
                # ~30k anchors was 85 % of the predict time
                out = model(x, training=False)
                best = tf.math.top_k(out["cls_logits"][..., 0], k=top_k).indices
                logits = tf.gather(out["cls_logits"], best, batch_dims=1)
                boxes = keras.utils.bounding_boxes.decode_deltas_to_boxes(
                    anchors=tf.gather(anchors, best),
                    boxes_delta=tf.gather(out["bbox_regression"], best, batch_dims=1),
                    encoded_format="center_xywh",
                    anchor_format="xyxy",
                    box_format="xyxy",
                    image_shape=(size, size, 3),
                )
                return boxes, logits

            tta_flip = self.config.tta_flip

            @tf.function(input_signature=[spec])
            @tf.autograph.experimental.do_not_convert  # straight-line code; avoids a warning
            def fn(x):
                boxes, logits = candidates(x)
                if tta_flip:  # the mirror's boxes, mirrored back, compete in the same NMS
                    fb, fl = candidates(tf.reverse(x, axis=[2]))
                    fb = tf.stack(
                        [size - fb[..., 2], fb[..., 1], size - fb[..., 0], fb[..., 3]], -1
                    )
                    boxes = tf.concat([boxes, fb], axis=1)
                    logits = tf.concat([logits, fl], axis=1)
                found = model.prediction_decoder(boxes, logits, images=x)
                return found["boxes"], found["confidence"]

            self._fn, self._fn_key = fn, key
        return self._fn

    def _prepare(self, image: Path | np.ndarray, index: int):
        import tensorflow as tf

        from ml.backbones import preprocess

        if isinstance(image, (str, os.PathLike)):
            arr = load_image(image)
        else:
            arr = as_rgb(image, f"image {index}")
        canvas, scale, _, _ = letterbox(tf.convert_to_tensor(arr), self.config.image_size)
        return preprocess(self.config.backbone, canvas), float(scale), arr.shape[:2]

    def predict(
        self, images: list[Path | np.ndarray], score_threshold: float = 0.01
    ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Rust boxes per photo: ((M, 4) xyxy float32 in original pixels, (M,) scores), best first.

        The default threshold (0.01) keeps low-scoring boxes, as COCO AP and the
        uncertainty scores need; show people boxes above ~0.3.
        """
        import tensorflow as tf

        fn = self._predict_fn(score_threshold)
        b = self.config.predict_batch
        results: list[tuple[np.ndarray, np.ndarray]] = []
        for start in range(0, len(images), b):
            chunk = [
                self._prepare(img, start + i) for i, img in enumerate(images[start : start + b])
            ]
            batch = tf.stack([c[0] for c in chunk])
            if len(chunk) < b:  # the predict function has a fixed batch size (NMS needs it)
                pad = tf.zeros((b - len(chunk), *batch.shape[1:]), batch.dtype)
                batch = tf.concat([batch, pad], axis=0)
            boxes, scores = fn(batch)
            boxes, scores = np.asarray(boxes, np.float32), np.asarray(scores, np.float32)
            for i, (_, scale, (h, w)) in enumerate(chunk):
                keep = scores[i] >= max(score_threshold, 1e-9)
                bx = boxes[i][keep] / scale
                bx[:, [0, 2]] = np.clip(bx[:, [0, 2]], 0, w)
                bx[:, [1, 3]] = np.clip(bx[:, [1, 3]], 0, h)
                ok = (bx[:, 2] > bx[:, 0]) & (bx[:, 3] > bx[:, 1])
                sc = scores[i][keep][ok]
                order = np.argsort(-sc, kind="stable")
                results.append((bx[ok][order].astype(np.float32), sc[order].astype(np.float32)))
        return results

    def uncertainty(self, images: list[Path | np.ndarray]) -> np.ndarray:
        """Per-photo detector uncertainty (see `detection_uncertainty`)."""
        return np.array([detection_uncertainty(s) for _, s in self.predict(images, 0.01)])

    def evaluate(self, samples: list[DetSample]) -> dict:
        """COCO bbox metrics (pycocotools) of this detector on boxed samples."""
        from ml.metrics import detection_metrics

        preds = self.predict([s.image_path for s in samples], score_threshold=0.01)
        return detection_metrics([np.asarray(s.boxes).reshape(-1, 4) for s in samples], preds)

    # -- persistence
    def save(self, directory: Path) -> None:
        """Write `detector.keras` (weights + architecture) and `detector.json` (config, info)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(suffix=".keras", dir=directory)
        os.close(fd)
        try:
            self.model.save(tmp)
            os.replace(tmp, directory / MODEL_FILE)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        meta = {"format": FORMAT_VERSION, "config": self.config.to_dict(), "info": self.info}
        _write_text_atomic(directory / META_FILE, json.dumps(meta, indent=2, default=_jsonable))

    @classmethod
    def load(cls, directory: Path) -> RustDetector:
        """Rebuild from `detector.json` and load the weights of `detector.keras`."""
        directory = Path(directory)
        try:
            meta = json.loads((directory / META_FILE).read_text())
            config = DetectorConfig.from_dict(meta["config"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DetectorInputError(f"{directory / META_FILE}: cannot load: {exc}") from exc
        if meta.get("format") != FORMAT_VERSION:
            raise DetectorInputError(
                f"{directory / META_FILE}: format {meta.get('format')!r}, expected {FORMAT_VERSION}"
            )
        model = build_model(config, weights=None)
        try:
            with warnings.catch_warnings():
                # the artifact holds the training optimizer's state; predicting needs none
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                model.load_weights(directory / MODEL_FILE)
        except (OSError, ValueError) as exc:
            raise DetectorInputError(f"{directory / MODEL_FILE}: cannot load: {exc}") from exc
        return cls(model, config, meta.get("info") or {})


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _write_text_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ------------------------------------------------------------------- training


def _val_callback(detector: RustDetector, val: list[DetSample], every: int):
    import keras

    class ValidationAP(keras.callbacks.Callback):
        """COCO AP on the validation photos every `every` epochs (and at the end)."""

        def on_epoch_end(self, epoch, logs=None):
            last = epoch + 1 == detector.config.epochs
            if logs is None or not ((epoch + 1) % every == 0 or last):
                return
            metrics = detector.evaluate(val)
            for k in ("AP", "AP50", "AP75"):
                logs[f"val_{k}"] = metrics[k]
            log.info("epoch %d: val AP %.3f AP50 %.3f", epoch + 1, metrics["AP"], metrics["AP50"])

    return ValidationAP()


def train_detector(
    train: list[DetSample],
    config: DetectorConfig,
    *,
    val: list[DetSample] | None = None,
    log_dir: Path | None = None,
    weights: str | None = "imagenet",
    progress: bool = True,
    eval_every: int = 10,
) -> RustDetector:
    """Train a rust detector on boxed photos; `val` (optional) is scored with COCO AP
    every `eval_every` epochs and logged (it never steers training)."""
    import keras

    if not train:
        raise DetectorInputError("train_detector needs at least one photo")
    keras.utils.set_random_seed(config.seed)
    start = time.perf_counter()
    ds = make_dataset(train, config, training=True)
    if val:
        _decoded(val, max_side=1)  # fail early, naming the file, on unreadable val photos
    model = build_model(config, weights)
    steps = math.ceil(len(train) / config.batch_size)
    _compile(model, config, steps)
    detector = RustDetector(model, config)
    callbacks: list = []
    if val:
        callbacks.append(_val_callback(detector, val, max(1, eval_every)))
    if log_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(str(log_dir), write_graph=False))
    # the dataset shuffles itself; shuffle=False only silences a Keras warning
    history = model.fit(
        ds, epochs=config.epochs, verbose=1 if progress else 0, callbacks=callbacks, shuffle=False
    )
    seconds = time.perf_counter() - start
    losses = history.history.get("loss", [])
    detector.info = {
        "train_photos": len(train),
        "train_boxes": int(sum(len(np.asarray(s.boxes).reshape(-1, 4)) for s in train)),
        "train_seconds": round(seconds, 1),
        "seconds_per_epoch": round(seconds / max(1, config.epochs), 2),
        "final_loss": float(losses[-1]) if losses else None,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "mixed_precision": bool(
            gpu_visible() if config.mixed_precision is None else config.mixed_precision
        ),
    }
    log.info("detector trained: %d photos, %d epochs, %.0f s", len(train), config.epochs, seconds)
    return detector
