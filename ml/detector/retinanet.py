"""The RetinaNet family: keras-hub RetinaNet over a `keras.applications` feature pyramid.

The library does the detection work (anchors, IoU matching and box encoding,
focal loss, box decoding, non-max suppression, the FPN and prediction heads);
this module wires it to our backbones and data.

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

import numpy as np

from ml.backbones import build_backbone, get_spec, pyramid_outputs
from ml.detector.config import DetectorConfig
from ml.detector.preprocessing import (
    DetSample,
    augment_sample,
    batched,
    model_input,
    pad_batch,
    pad_boxes,
    photo_dataset,
)

_SLIM_CLS = None  # the keras-hub subclass, defined on first use (keeps imports cheap)
# what RetinaNetObjectDetector.get_config adds that SlimRetinaNet fixes itself
_FIXED = {"backbone": None, "preprocessor": None, "bounding_box_format": "xyxy"}


def register():
    """Define (and register with Keras) the keras-hub subclass; needed before load_model."""
    global _SLIM_CLS
    if _SLIM_CLS is not None:
        return _SLIM_CLS
    import keras
    from keras_hub.models import ObjectDetector, RetinaNetObjectDetector

    from ml.detector.hub import FeaturePyramid, PredictionHead

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
            self.min_level, self.max_level = min_level, max_level
            self.fpn_width, self.head_width, self.head_layers = fpn_width, head_width, head_layers
            self.image_shape = tuple(image_shape)
            self.head_dtype = head_dtype

        def get_config(self):
            # RetinaNetObjectDetector's config (name, num_classes, anchors, label encoder,
            # decoder, ...) plus what this class adds
            config = super().get_config()
            config.update(
                {
                    "encoder": keras.layers.serialize(self.encoder),
                    "min_level": self.min_level,
                    "max_level": self.max_level,
                    "fpn_width": self.fpn_width,
                    "head_width": self.head_width,
                    "head_layers": self.head_layers,
                    "image_shape": list(self.image_shape),
                    "head_dtype": self.head_dtype,
                }
            )
            return config

        @classmethod
        def from_config(cls, config):
            config = dict(config)
            for key, value in _FIXED.items():
                got = config.pop(key, value)
                if got != value:
                    raise ValueError(f"SlimRetinaNet: {key}={got!r} is not supported")
            config.pop("use_prediction_head_norm", None)  # always off here
            config.pop("pre_logits_num_conv_layers", None)  # = head_layers
            for key in ("encoder", "anchor_generator", "label_encoder", "prediction_decoder"):
                if isinstance(config.get(key), dict):
                    config[key] = keras.layers.deserialize(config[key])
            config["image_shape"] = tuple(config["image_shape"])
            return cls(**config)

    _SLIM_CLS = SlimRetinaNet
    return SlimRetinaNet


def make_decoder(config: DetectorConfig, confidence: float):
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

    from ml.detector.hub import BoxMatcher

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


def build_model(config: DetectorConfig, weights: str | None = "imagenet", *, mixed: bool = False):
    """The untrained RetinaNet for `config`; `weights` go to the backbone only."""
    import keras
    from keras_hub.layers import AnchorGenerator

    from ml.detector.hub import RetinaNetLabelEncoder

    cls = register()
    spec = get_spec(config.backbone)
    base = build_backbone(config.backbone, config.image_size, weights)
    base.trainable = config.train_backbone
    for layer in base.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # frozen BN (inference mode): 8-photo batches are too few
    encoder = keras.Model(base.inputs, pyramid_outputs(base, spec), name="encoder")
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
    return cls(
        encoder=encoder,
        num_classes=1,
        anchor_generator=anchors,
        label_encoder=label_encoder,
        prediction_decoder=make_decoder(config, 0.01),
        min_level=config.min_level,
        max_level=config.max_level,
        fpn_width=config.fpn_width,
        head_width=config.head_width,
        head_layers=config.head_layers,
        image_shape=(config.image_size, config.image_size, 3),
        head_dtype="float32" if mixed else None,
        name="rust_retinanet",
    )


def make_dataset(
    samples: list[DetSample], config: DetectorConfig, *, training: bool, repeat_seed: int = 0
):
    """A `tf.data.Dataset` of (preprocessed images, {"boxes", "labels"}) batches, streamed
    from the photo files (`photo_dataset`)."""
    max_boxes = max([1] + [len(np.asarray(s.boxes).reshape(-1, 4)) for s in samples])

    def prepare(image, boxes, _mask, _has_mask):
        canvas, boxes, labels = augment_sample(image, boxes, config, training)
        boxes, labels = pad_boxes(boxes, labels, max_boxes)
        return model_input(config, canvas), {"boxes": boxes, "labels": labels}

    ds = photo_dataset(samples, config, training=training, seed=repeat_seed)
    return batched(ds, config, prepare)


def compile_model(model, config: DetectorConfig, optimizer, jit_compile: bool) -> None:
    import keras

    model.compile(
        optimizer=optimizer,
        jit_compile=jit_compile,
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


def make_predictor(model, config: DetectorConfig, threshold: float):
    """A function of 1..`predict_batch` network inputs (n, S, S, 3) -> per photo (boxes
    (M, 4) in canvas pixels, scores (M,), None: no heat map), NMS done.

    Decoding and NMS are traced for a fixed batch (NMS needs it); a Keras network runs in
    the same graph on the batch padded to it. A network with `forward_numpy` (the LiteRT
    one, ml.serving) runs outside the graph on the real photos only, and its outputs are
    padded instead: one photo costs one photo's forward pass, not `predict_batch`'s."""
    import keras
    import tensorflow as tf

    model._prediction_decoder = make_decoder(config, min(0.01, threshold))
    size, batch = config.image_size, config.predict_batch
    spec = tf.TensorSpec((batch, size, size, 3), tf.float32)
    anchors = model.anchor_generator(tf.zeros((1, size, size, 3)))
    anchors = tf.concat(list(anchors.values()), axis=0)  # (A, 4) xyxy, all levels
    count = int(anchors.shape[0])
    top_k = min(config.pre_nms_top_k, count)
    tta_flip = config.tta_flip

    def candidates(out):
        # RetinaNetObjectDetector.decode_predictions, but only the `pre_nms_top_k`
        # best anchors go on to NMS (as the RetinaNet paper does): NMS over all
        # ~30k anchors was 85 % of the predict time
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

    def detections(out, mirrored=None):
        boxes, logits = candidates(out)
        if mirrored is not None:  # the mirror's boxes, mirrored back, compete in the same NMS
            fb, fl = candidates(mirrored)
            fb = tf.stack([size - fb[..., 2], fb[..., 1], size - fb[..., 0], fb[..., 3]], -1)
            boxes = tf.concat([boxes, fb], axis=1)
            logits = tf.concat([logits, fl], axis=1)
        found = model.prediction_decoder(boxes, logits)  # xyxy pixels: no image needed
        return found["boxes"], found["confidence"]

    @tf.function(input_signature=[spec])
    @tf.autograph.experimental.do_not_convert  # straight-line code; avoids a warning
    def fn(x):
        mirrored = model(tf.reverse(x, axis=[2]), training=False) if tta_flip else None
        return detections(model(x, training=False), mirrored)

    outputs = [
        tf.TensorSpec((batch, count, 1), tf.float32),
        tf.TensorSpec((batch, count, 4), tf.float32),
    ]

    @tf.function(input_signature=outputs * (2 if tta_flip else 1))
    @tf.autograph.experimental.do_not_convert
    def decode(cls, box, mirror_cls=None, mirror_box=None):
        out = {"cls_logits": cls, "bbox_regression": box}
        mirrored = None
        if tta_flip:
            mirrored = {"cls_logits": mirror_cls, "bbox_regression": mirror_box}
        return detections(out, mirrored)

    forward = getattr(model, "forward_numpy", None)

    def predict(x):
        n = int(x.shape[0])
        if forward is None:
            boxes, scores = fn(pad_batch(np.asarray(x, np.float32), batch))
        else:
            x = np.asarray(x, np.float32)
            outs = list(forward(x))
            if tta_flip:
                outs += forward(np.ascontiguousarray(x[:, :, ::-1]))
            # padding rows score nothing (logit -1e4): NMS keeps none of their boxes
            outs = [pad_batch(o, batch, -1e4 if o.shape[-1] == 1 else 0.0) for o in outs]
            boxes, scores = decode(*outs)
        boxes, scores = np.asarray(boxes, np.float32), np.asarray(scores, np.float32)
        return [(boxes[i], scores[i], None) for i in range(n)]

    predict.graph_fn = fn  # the traced function itself (tests compare it with keras-hub's)
    return predict
