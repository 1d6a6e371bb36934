"""RustDetector: the one interface of both detector families, and its artifact format.

    DIR/detector.keras   the whole network (architecture + weights), loadable by
                         `keras.saving.load_model` once `register_custom_objects()` ran
    DIR/detector.json    {"format", "config" (DetectorConfig, with its family), "info"}

Whatever the family, `predict` takes photos (paths or arrays) and gives rust
boxes in pixels of the original photo with scores, best first; the score-map
family also gives its heat map (`Detections.heatmap`).
"""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ml.detector.config import DetectorConfig
from ml.detector.preprocessing import DetectorInputError, DetSample, prepare_photo

FORMAT_VERSION = 1
MODEL_FILE = "detector.keras"
META_FILE = "detector.json"


def family_module(name: str):
    """The module of one detector family (ml.detector.retinanet / .scoremap)."""
    return importlib.import_module(f"ml.detector.{name}")


def register_custom_objects() -> None:
    """Register every family's Keras classes, so `keras.saving.load_model` can rebuild them."""
    for name in ("retinanet", "scoremap"):
        family_module(name).register()


def gpu_visible() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def uses_mixed_precision(config: DetectorConfig) -> bool:
    return gpu_visible() if config.mixed_precision is None else bool(config.mixed_precision)


def build_model(config: DetectorConfig, weights: str | None = "imagenet"):
    """The untrained network of `config`'s family; `weights` go to the backbone only."""
    import keras

    mixed = uses_mixed_precision(config)
    previous = keras.config.dtype_policy()
    if mixed:
        keras.config.set_dtype_policy("mixed_float16")
    try:
        return family_module(config.family).build_model(config, weights, mixed=mixed)
    finally:
        keras.config.set_dtype_policy(previous)


class WarmStartError(DetectorInputError):
    """A detector cannot start from that artifact's weights (another architecture)."""


def warm_start_mismatch(config: DetectorConfig, directory: Path) -> str | None:
    """Why a detector of `config` cannot start from the artifact in `directory` (None: it can).

    Reads only `detector.json`: cheap enough to decide before training starts."""
    directory = Path(directory)
    try:
        meta = json.loads((directory / META_FILE).read_text())
        other = DetectorConfig.from_dict(meta["config"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{directory / META_FILE} cannot be read: {exc}"
    if meta.get("format") != FORMAT_VERSION:
        return f"{directory / META_FILE}: format {meta.get('format')!r}, expected {FORMAT_VERSION}"
    diff = config.architecture_mismatch(other)
    return f"{directory} is another architecture: {diff}" if diff else None


def load_init_weights(model, config: DetectorConfig, directory: Path) -> None:
    """Copy the weights of the trained detector in `directory` into `model` (a warm start).

    Raises WarmStartError, saying what differs, when that detector's config is of
    another architecture (ARCHITECTURE_KEYS) or its weights do not fit."""
    reason = warm_start_mismatch(config, directory)
    if reason:
        raise WarmStartError(f"cannot warm-start the detector: {reason}")
    source = RustDetector.load(directory).model
    try:
        model.set_weights(source.get_weights())
    except ValueError as exc:
        raise WarmStartError(
            f"cannot warm-start the detector from {directory}: its weights do not fit ({exc})"
        ) from exc


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


class Detections(tuple):
    """One photo's result: unpacks as (boxes, scores); `.heatmap` is the rust probability
    map over the photo ((h, w) cells, stretch it to the photo's size to overlay it), or None
    for a family without one (RetinaNet)."""

    def __new__(cls, boxes: np.ndarray, scores: np.ndarray, heatmap: np.ndarray | None = None):
        self = super().__new__(cls, (boxes, scores))
        self.heatmap = heatmap
        return self

    @property
    def boxes(self) -> np.ndarray:
        return self[0]

    @property
    def scores(self) -> np.ndarray:
        return self[1]


class RustDetector:
    """A trained detector of either family: predict boxes in original pixels, save, load."""

    def __init__(self, model, config: DetectorConfig, info: dict | None = None):
        self.model = model
        self.config = config
        self.info: dict = info or {}
        self._fn = None
        self._fn_key: tuple | None = None  # the settings the predictor was built for

    @property
    def family(self) -> str:
        return self.config.family

    # -- prediction
    def _predict_fn(self, threshold: float):
        """The family's fixed-batch predictor (rebuilt when a setting it depends on changes)."""
        key = (min(0.01, threshold), self.config.tta_flip)
        if self._fn is None or self._fn_key != key:
            module = family_module(self.config.family)
            self._fn = module.make_predictor(self.model, self.config, threshold)
            self._fn_key = key
        return self._fn

    def predict(
        self, images: list[Path | np.ndarray], score_threshold: float = 0.01
    ) -> list[Detections]:
        """Rust boxes per photo: ((M, 4) xyxy float32 in original pixels, (M,) scores), best
        first, with the heat map where the family has one.

        The default threshold (0.01) keeps low-scoring boxes, as COCO AP and the
        uncertainty scores need; show people boxes above ~0.3.
        """
        fn = self._predict_fn(score_threshold)
        b = self.config.predict_batch
        size = self.config.image_size
        results: list[Detections] = []
        for start in range(0, len(images), b):
            chunk = [
                prepare_photo(img, start + i, self.config)
                for i, img in enumerate(images[start : start + b])
            ]
            batch = np.stack([np.asarray(c[0]) for c in chunk])  # 1..b photos: fn pads
            for (_, scale, (h, w)), (boxes, scores, heat) in zip(chunk, fn(batch), strict=True):
                keep = scores >= max(score_threshold, 1e-9)
                bx = boxes[keep] / scale
                bx[:, [0, 2]] = np.clip(bx[:, [0, 2]], 0, w)
                bx[:, [1, 3]] = np.clip(bx[:, [1, 3]], 0, h)
                ok = (bx[:, 2] > bx[:, 0]) & (bx[:, 3] > bx[:, 1])
                sc = scores[keep][ok]
                order = np.argsort(-sc, kind="stable")
                if heat is not None:  # the cells over the photo, not the letterbox padding
                    cell = size / heat.shape[0]
                    rows, cols = (max(1, round(n * scale / cell)) for n in (h, w))
                    heat = heat[:rows, :cols]
                results.append(
                    Detections(bx[ok][order].astype(np.float32), sc[order].astype(np.float32), heat)
                )
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
        """Write `detector.keras` (architecture + weights) and `detector.json` (config, info)."""
        from ml.voc import write_atomic

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
        write_atomic(directory / META_FILE, json.dumps(meta, indent=2, default=_jsonable).encode())

    @classmethod
    def load(cls, directory: Path) -> RustDetector:
        """Read `detector.json` and `keras.saving.load_model` the network of `detector.keras`."""
        import keras

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
        register_custom_objects()
        try:
            with warnings.catch_warnings():
                # the artifact holds the training optimizer's state; predicting needs none
                warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
                model = keras.saving.load_model(directory / MODEL_FILE, compile=False)
        except (OSError, ValueError, TypeError) as exc:
            raise DetectorInputError(f"{directory / MODEL_FILE}: cannot load: {exc}") from exc
        return cls(model, config, meta.get("info") or {})


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
