"""Detector inputs: photos, boxes and masks in; letterboxed, augmented tensors out.

Boxes are xyxy in pixels of the ORIGINAL photo, in and out. Photos are
letterboxed (scaled so the long side fits, padded to a square), never cropped,
so no box is lost at prediction time. Augmentation moves boxes (and masks)
with the pixels, in TF ops inside `tf.data`.

Training data streams from the files: the pipeline holds (path, boxes, mask path)
records and decodes each photo when it reaches it, every epoch (`photo_dataset`),
so memory does not grow with the number of photos.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

from ml.detector.config import DetectorConfig

# tf.data may use this much memory for its buffers (decoded photos, batches in flight)
PIPELINE_RAM_BUDGET = 512 * 2**20
PAD_PIXEL = 127.5  # letterbox padding (raw 0..255 scale): mid-grey, 0 after [-1, 1] scaling
NO_BOX = (0.0, 0.0, 1.0, 1.0)  # placeholder for padding rows: tiny, never matches an anchor


class DetectorInputError(ValueError):
    """Input the detector cannot use (unreadable image, box outside it); names the file."""


class DetSample(NamedTuple):
    """One training/evaluation photo: its path, rust boxes (N, 4) xyxy in original pixels,
    and optionally a mask file of the same size (non-zero = rust) that the score map
    learns from instead of the boxes. A photo with no boxes is a negative."""

    image_path: Path
    boxes: np.ndarray
    mask_path: Path | None = None


def load_image(path: str | os.PathLike, min_side: int | None = None) -> np.ndarray:
    """Decode a photo to an (H, W, 3) uint8 RGB array by the one decode rule of `ml.images`
    (stored pixel grid, no EXIF rotation, as boxes are drawn; JPEG draft decoding down to
    `min_side` when given); errors name the file."""
    from ml.images import ImageError, decode

    try:
        return np.asarray(decode(path, min_side=min_side))
    except (ImageError, Image.DecompressionBombError) as exc:
        reason = str(exc).removeprefix(f"{path}: ")  # an ImageError starts with the path
        raise DetectorInputError(f"{path}: cannot read image: {reason}") from exc


def photo_size(path: str | os.PathLike, what: str = "image") -> tuple[int, int]:
    """(width, height) from the file's header (no pixels decoded); errors name the file."""
    from ml.images import ImageError, image_size

    try:
        return image_size(path)
    except (ImageError, Image.DecompressionBombError) as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        raise DetectorInputError(f"{path}: cannot read {what}: {reason}") from exc


def load_mask(path: str | os.PathLike, width: int, height: int) -> np.ndarray:
    """A rust mask as (H, W) uint8 0/1 (any non-zero value is rust); it must match its photo."""
    try:
        with Image.open(path) as img:
            arr = np.asarray(img.convert("L"))
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        raise DetectorInputError(f"{path}: cannot read mask: {exc}") from exc
    if arr.shape != (height, width):
        raise DetectorInputError(
            f"{path}: mask is {arr.shape[1]}x{arr.shape[0]}, its photo {width}x{height}"
        )
    return (arr > 0).astype(np.uint8)


def as_rgb(image: np.ndarray, where: str = "image") -> np.ndarray:
    """Accept (H, W), (H, W, 1|3|4) arrays; return (H, W, 3) uint8 RGB."""
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


def letterbox(image, size: int, zoom=1.0, offset=(0, 0), pad=PAD_PIXEL):
    """Scale a (H, W, C) tensor so its long side is `size * zoom`; paste at `offset` on a
    `size` square padded with `pad` (a number or one per channel). Returns (canvas float32,
    scale, x offset, y offset)."""
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
    pad = tf.constant(pad, tf.float32)
    canvas = tf.image.pad_to_bounding_box(resized - pad, oy, ox, size, size) + pad
    return canvas, scale, tf.cast(ox, tf.float32), tf.cast(oy, tf.float32)


def augment_sample(image, boxes, config: DetectorConfig, training: bool, mask=None):
    """Box-preserving augmentation of one photo in TF ops.

    Horizontal flip, random crop (boxes clipped; a box left less than
    `min_visible` of its area is marked ignore (-2) so the anchors on its
    remains are neither rust nor background), zoom-out with a random place on
    the letterbox canvas, colour jitter. Returns (canvas 0..255, boxes, labels)
    with labels 0 = rust, -2 = ignore, -1 = no box; with an (H, W) `mask`, also
    the mask on the canvas (0..1, padding 0), moved exactly as the pixels.
    """
    import tensorflow as tf

    image = tf.cast(image, tf.float32)
    pad: Any = PAD_PIXEL
    if mask is not None:  # a 4th channel rides along every geometric step
        image = tf.concat([image, tf.cast(mask, tf.float32)[..., None]], axis=-1)
        pad = [PAD_PIXEL] * 3 + [0.0]
    boxes = tf.reshape(tf.cast(boxes, tf.float32), (-1, 4))
    h = tf.cast(tf.shape(image)[0], tf.float32)
    w = tf.cast(tf.shape(image)[1], tf.float32)
    labels = tf.zeros(tf.shape(boxes)[:1], tf.float32)
    size = config.image_size

    def result(canvas, boxes, labels):
        if mask is None:
            return canvas, boxes, labels
        return canvas[..., :3], boxes, labels, canvas[..., 3]

    if not (training and config.augment):
        canvas, scale, _, _ = letterbox(image, size, pad=pad)
        return result(canvas, boxes * scale, labels)

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
        boxes = tf.where((labels == -1.0)[:, None], tf.constant(NO_BOX), clipped)
        h, w = ch, cw

    zoom = tf.random.uniform((), config.zoom_out_min, 1.0)
    scale = size * zoom / tf.maximum(h, w)
    free_x = tf.maximum(size - tf.round(w * scale), 0.0)
    free_y = tf.maximum(size - tf.round(h * scale), 0.0)
    offset = (
        tf.floor(tf.random.uniform(()) * (free_x + 1)),
        tf.floor(tf.random.uniform(()) * (free_y + 1)),
    )
    canvas, scale, ox, oy = letterbox(image, size, zoom, offset, pad=pad)
    boxes = tf.where(
        (labels == -1.0)[:, None], tf.constant(NO_BOX), boxes * scale + tf.stack([ox, oy, ox, oy])
    )

    if config.color > 0:
        s = config.color
        x = canvas[..., :3] / 255.0
        x = tf.image.random_brightness(x, 0.12 * s)
        x = tf.image.random_contrast(x, 1 - 0.25 * s, 1 + 0.25 * s)
        x = tf.image.random_saturation(x, 1 - 0.3 * s, 1 + 0.3 * s)
        x = tf.image.random_hue(x, 0.02 * s)  # rust is a colour: keep hue shifts small
        canvas = tf.concat([tf.clip_by_value(x, 0.0, 1.0) * 255.0, canvas[..., 3:]], axis=-1)
    return result(canvas, boxes, labels)


def pad_boxes(boxes, labels, max_boxes: int):
    """Pad (N, 4) boxes and (N,) labels to `max_boxes` rows (label -1: no box)."""
    import tensorflow as tf

    n = tf.shape(boxes)[0]
    fill = tf.tile(tf.constant([NO_BOX]), [max_boxes - n, 1])
    boxes = tf.concat([boxes, fill], axis=0)
    labels = tf.concat([labels, -tf.ones([max_boxes - n])], axis=0)
    boxes.set_shape([max_boxes, 4])
    labels.set_shape([max_boxes])
    return boxes, labels


class Decoded(NamedTuple):
    image: np.ndarray  # (H, W, 3) uint8
    boxes: np.ndarray  # (N, 4) float32 in this image's pixels
    mask: np.ndarray | None  # (H, W) uint8 0/1, when the sample has a mask


def check_samples(samples: list[DetSample], masks: bool = False) -> list[np.ndarray]:
    """Validate every sample from the file headers only (no pixels decoded): the photo opens,
    its boxes lie inside it, its mask (with `masks`) has its size. Returns the checked
    boxes; the first problem raises DetectorInputError naming the file, before training."""
    out = []
    for s in samples:
        w, h = photo_size(s.image_path)
        out.append(check_boxes(s.boxes, w, h, str(s.image_path)))
        if masks and s.mask_path is not None:
            mw, mh = photo_size(s.mask_path, "mask")
            if (mw, mh) != (w, h):
                raise DetectorInputError(f"{s.mask_path}: mask is {mw}x{mh}, its photo {w}x{h}")
    return out


def read_sample(
    image_path: str | os.PathLike, boxes: Any, mask_path: str | os.PathLike | None, max_side: int
) -> Decoded:
    """Decode one photo (and its mask) shrunk to `max_side` (boxes scaled along): what the
    training pipeline does per photo, every epoch, when it reaches it."""
    w, h = photo_size(image_path)
    boxes = check_boxes(boxes, w, h, str(image_path))
    image = load_shrunk(image_path, max_side, (w, h))
    mask = load_mask(mask_path, w, h) if mask_path is not None else None
    if image.shape[:2] != (h, w):
        size = (image.shape[1], image.shape[0])
        if mask is not None:
            mask = np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST))
        boxes = boxes * np.array([size[0] / w, size[1] / h] * 2, np.float32)
    return Decoded(image, boxes, mask)


def read_side(config: DetectorConfig) -> int:
    """The longest side a photo is decoded at, for training and prediction alike: 2x the
    model size, so training crops keep some detail."""
    return 2 * config.image_size


def load_shrunk(
    path: str | os.PathLike, max_side: int, size: tuple[int, int] | None = None
) -> np.ndarray:
    """The photo decoded with its long side at most `max_side`: JPEG draft decoding (a 4000 px
    photo is never decoded whole), then a bilinear resize. `size`: its (W, H), when the header
    was read already."""
    w, h = size or photo_size(path)
    image = load_image(path, min_side=max_side)  # JPEG draft: decoded at >= max_side
    if max(h, w) > max_side:
        r = max_side / max(h, w)
        shrunk = (max(1, round(w * r)), max(1, round(h * r)))
        image = np.asarray(Image.fromarray(image).resize(shrunk, Image.Resampling.BILINEAR))
    return image


def photo_dataset(
    samples: list[DetSample],
    config: DetectorConfig,
    *,
    training: bool,
    seed: int = 0,
    masks: bool = False,
):
    """A `tf.data.Dataset` of (image uint8, boxes, mask (H, W) uint8, has_mask) per photo,
    streamed: it holds (path, boxes, mask path) records and each photo is read from its file
    (`read_sample`, at most 2x the model size a side) when the pipeline reaches it, every
    epoch; nothing is cached. Shuffled each epoch when training. Photos without a mask get
    an all-zero one. Boxes (and, with `masks`, mask sizes) are checked here, up front."""
    import tensorflow as tf

    boxes = check_samples(samples, masks=masks)
    max_side = read_side(config)
    paths = [str(s.image_path) for s in samples]
    mask_paths = [str(s.mask_path) if masks and s.mask_path else "" for s in samples]
    flat = np.concatenate([np.zeros((0, 4), np.float32), *boxes]).astype(np.float32)
    ragged = tf.RaggedTensor.from_row_lengths(flat, [len(b) for b in boxes])
    ds = tf.data.Dataset.from_tensor_slices((paths, mask_paths, ragged))
    if training:  # shuffling the records, before any decoding: cheap, the same order as ever
        ds = ds.shuffle(len(samples), seed=config.seed + seed, reshuffle_each_iteration=True)

    def read_py(path, mask_path, boxes):
        d = read_sample(path.decode(), boxes, mask_path.decode() or None, max_side)
        has = d.mask is not None
        mask = d.mask if has else np.zeros(d.image.shape[:2], np.uint8)
        return d.image, d.boxes.astype(np.float32), mask, np.bool_(has)

    def read(path, mask_path, boxes):
        image, boxes, mask, has = tf.numpy_function(
            read_py,
            [path, mask_path, boxes],
            [tf.uint8, tf.float32, tf.uint8, tf.bool],
            stateful=False,
            name="read_photo",
        )
        image.set_shape((None, None, 3))
        boxes.set_shape((None, 4))
        mask.set_shape((None, None))
        has.set_shape(())
        return image, boxes, mask, has

    return ds.map(read, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def batched(ds, config: DetectorConfig, prepare):
    """`prepare` (augment, encode) each photo in parallel, batch, prefetch: the end of both
    families' pipelines. Parallelism is tuned by tf.data within a RAM budget."""
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = True
    options.autotune.ram_budget = PIPELINE_RAM_BUDGET
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(config.batch_size).prefetch(2).with_options(options)


def input_error(exc: Exception) -> DetectorInputError | None:
    """The DetectorInputError a photo raised inside the tf.data pipeline (TensorFlow wraps
    it in an OpError whose message carries it), or None when `exc` is something else."""
    import re

    found = re.search(r"DetectorInputError: ([^\n]+)", str(getattr(exc, "message", exc)))
    return DetectorInputError(found.group(1).strip()) if found else None


def model_input(config: DetectorConfig, canvas):
    """Backbone-preprocessed canvas with its static shape (what the networks take)."""
    from ml.backbones import preprocess

    x = preprocess(config.backbone, canvas)
    x.set_shape((config.image_size, config.image_size, 3))
    return x


def prepare_photo(image: Path | np.ndarray, index: int, config: DetectorConfig):
    """One photo for prediction: (network input, scale to canvas, (H, W) of the original).

    A file is read as training reads it (`load_shrunk` to `read_side`); the scale maps
    canvas pixels back to the original photo's."""
    if isinstance(image, (str, os.PathLike)):
        w, h = photo_size(image)
        arr = load_shrunk(image, read_side(config), (w, h))
    else:
        arr = as_rgb(image, f"image {index}")
        h, w = arr.shape[:2]
    x, scale = _predict_input(config)(arr)
    return x, float(scale) * max(arr.shape[:2]) / max(h, w), (h, w)


def pad_batch(x: np.ndarray, rows: int, value: float = 0.0) -> np.ndarray:
    """`x` with rows of `value` appended up to `rows`: the fixed batch a traced predictor
    (and its NMS) is built for; the caller drops the extra rows' results."""
    x = np.asarray(x)
    if len(x) > rows:
        raise ValueError(f"a batch of {len(x)} photos; the predictor takes at most {rows}")
    if len(x) == rows:
        return x
    return np.concatenate([x, np.full((rows - len(x), *x.shape[1:]), value, x.dtype)])


_PREDICT_INPUTS: dict[tuple[str, int], Any] = {}  # (backbone, size) -> traced function


def _predict_input(config: DetectorConfig):
    """letterbox + model_input as one traced function of any photo size: run op by op
    (eagerly) they cost ~13 ms a photo on a 2-core CPU, as much as the network in LiteRT."""
    key = (config.backbone, config.image_size)
    fn = _PREDICT_INPUTS.get(key)
    if fn is None:
        import tensorflow as tf

        @tf.function(input_signature=[tf.TensorSpec((None, None, 3), tf.uint8)])
        @tf.autograph.experimental.do_not_convert  # straight-line code; avoids a warning
        def fn(image):
            canvas, scale, _, _ = letterbox(image, config.image_size)
            return model_input(config, canvas), scale

        _PREDICT_INPUTS[key] = fn
    return fn
