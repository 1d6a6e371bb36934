"""Rust / no-rust photo classifier: a small head on cached backbone embeddings.

Recipe (chosen for generalising from few, narrow photos, not for the seed set):
- frozen ImageNet backbone, global average + max pooling (max keeps small
  rust patches that an average over a large photo dilutes), at one or more
  input sizes (concatenated: multi-scale);
- training on augmented views of every photo (crops, flips, mild colour
  jitter: see `ml.images.apply_view`), test-time averaging over the photo and
  its mirror;
- an L2-regularised logistic regression (scikit-learn) on standardised
  features; it is exported as a Keras head (`classifier_head.keras`:
  embedding -> probability) with the calibration folded in;
- Platt calibration on out-of-fold predictions of the training photos
  (grouped folds, so near-duplicates do not flatter them), and the decision
  threshold chosen there and on the validation photos for a target rust
  recall (missing rust is the expensive error), stored with the model;
- optional fine-tuning of the top backbone blocks (`fine_tune_layers`),
  after which embeddings are recomputed under the new weights' cache key;
- optional tile scoring (`tile_grids`): rust is local, so a photo is rust if
  any region is. The windows of G x G grids (`ml.images.tile_box`) are
  embedded beside the photo and scored by the same head, and the photo's
  score is the highest of its own and its tiles'. In training, every tile of
  a no-rust photo is a negative and the `tile_positives` best-scoring tiles of
  each rust photo are positives (multiple-instance learning). It costs a
  backbone pass per tile at prediction time;
- optional hue / saturation jitter of the augmented views (`hue_jitter`).

TensorFlow/Keras are imported lazily.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ml.config import config_from_dict
from ml.embeddings import Embedder, EmbeddingCache, embed_photos
from ml.hooks import TrainingHooks
from ml.images import tile_names, view_names
from ml.voc import write_atomic

log = logging.getLogger(__name__)

TTA_VIEWS = ("full", "hflip")


@dataclass
class ClassifierConfig:
    """Everything that defines a classifier; stored in the artifact manifest."""

    backbone: str = "mobilenet_v2_035"
    image_sizes: tuple[int, ...] = (448,)
    pooling: str = "avgmax"
    n_aug: int = 8  # augmented views per training photo (plus full and mirror)
    tta: bool = True  # average the photo and its mirror at prediction time
    C: float = 0.01  # inverse L2 strength of the logistic regression
    target_recall: float = 0.97
    calibration_folds: int = 5
    fine_tune_layers: int = 0  # >0: train the last N backbone layers (BatchNorm stays frozen)
    fine_tune_epochs: int = 3
    fine_tune_lr: float = 1e-4
    batch_size: int = 32
    seed: int = 0
    tile_grids: tuple[int, ...] = ()  # e.g. (2,): also score the 4 windows of a 2 x 2 grid
    tile_positives: int = 1  # with tiles: best-scoring tiles of a rust photo taken as rust
    hue_jitter: bool = False  # augmented views "hue<N>" (hue + saturation) instead of "aug<N>"

    def __post_init__(self) -> None:
        self.image_sizes = tuple(int(s) for s in self.image_sizes)
        if not self.image_sizes or min(self.image_sizes) < 32:
            raise ValueError("image_sizes must be a list of sizes >= 32")
        if not 0 < self.target_recall <= 1:
            raise ValueError("target_recall must be in (0, 1]")
        if self.C <= 0:
            raise ValueError("C must be positive")
        self.tile_grids = tuple(int(g) for g in self.tile_grids)
        if any(not 1 <= g <= 9 for g in self.tile_grids):
            raise ValueError("tile_grids must be grid sizes from 1 to 9")
        if self.tile_positives < 0:
            raise ValueError("tile_positives must be >= 0")

    @classmethod
    def from_dict(cls, data: dict) -> ClassifierConfig:
        """Inverse of `dataclasses.asdict`; unknown keys are an error (ml.config)."""
        return config_from_dict(cls, data, "classifier config")

    @property
    def photo_views(self) -> list[str]:
        """The whole-photo views averaged at prediction time."""
        return list(TTA_VIEWS) if self.tta else ["full"]

    @property
    def tile_views(self) -> list[str]:
        return tile_names(self.tile_grids)

    @property
    def predict_views(self) -> list[str]:
        return self.photo_views + self.tile_views

    @property
    def train_views(self) -> list[str]:
        """The prediction views first (so `x[:, :len(predict_views)]` of training embeddings
        is what prediction sees), then the rest of the augmented views."""
        aug = [v.replace("aug", "hue") if self.hue_jitter else v for v in view_names(self.n_aug)]
        first = self.predict_views
        return first + [v for v in aug if v not in first]


def threshold_for_recall(y: Sequence[int], prob: Sequence[float], target: float) -> float:
    """The highest threshold that keeps rust recall >= target on (y, prob).

    It is set halfway between the last rust score it must keep and the next
    lower score, so a photo scoring like the hardest kept rust photo stays
    rust. Capped at 0.5; 0.5 without rust examples.
    """
    y, prob = np.asarray(y, dtype=int), np.asarray(prob, dtype=float)
    rust = np.sort(prob[y == 1])[::-1]
    if len(rust) == 0:
        return 0.5
    k = min(len(rust), max(1, math.ceil(target * len(rust) - 1e-9)))
    keep = rust[k - 1]
    below = prob[prob < keep]
    t = (keep + below.max()) / 2 if len(below) else keep
    # never above 0.5: a lower threshold only raises recall, and rust is the costly miss
    return float(min(t, 0.5))


def _embed_hook(hooks: TrainingHooks):
    def on_batch(done: int, total: int) -> None:
        hooks.progress("classifier", done, total)
        hooks.check("classifier, embedding")

    return on_batch


@dataclass
class HeadParams:
    """The fitted head: standardisation, linear weights, Platt calibration."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    platt_a: float = 1.0
    platt_b: float = 0.0

    def logits(self, x: np.ndarray) -> np.ndarray:
        return ((x - self.mean) / self.scale) @ self.coef + self.intercept

    def proba(self, x: np.ndarray) -> np.ndarray:
        z = self.platt_a * self.logits(x) + self.platt_b
        return 1.0 / (1.0 + np.exp(-z))


def _fit_linear(x: np.ndarray, y: np.ndarray, config: ClassifierConfig) -> HeadParams:
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x)
    lr = LogisticRegression(C=config.C, max_iter=5000, class_weight="balanced")
    lr.fit(scaler.transform(x), y)
    return HeadParams(
        mean=scaler.mean_.astype(np.float32),
        scale=scaler.scale_.astype(np.float32),
        coef=lr.coef_[0].astype(np.float32),
        intercept=float(lr.intercept_[0]),
    )


def _fit_platt(logits: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression

    if len(set(y.tolist())) < 2:
        return 1.0, 0.0
    lr = LogisticRegression(C=1e4, max_iter=1000).fit(logits.reshape(-1, 1), y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


class RustClassifier:
    """Photo -> rust probability, with the stored decision threshold."""

    def __init__(
        self, config: ClassifierConfig | None = None, weights: str | None = "imagenet", base=None
    ):
        self.config = config or ClassifierConfig()
        self.weights = weights
        self._base = base  # a backbone model to use instead of building one (loaded / tuned)
        self._embedders: dict[int, Embedder] = {}
        self.head: HeadParams | None = None
        self._head_model = None  # the Keras head that all predictions go through
        self.threshold = 0.5
        # mean unit embedding of the training photos: the queue's typicality centre
        self.centre: np.ndarray | None = None
        self.info: dict = {}

    # ---------------------------------------------------------------- embeddings
    def embedder(self, size: int) -> Embedder:
        """The frozen backbone at one input size (built once, weights shared)."""
        if size not in self._embedders:
            from ml.backbones import build_backbone

            if self._base is None:
                self._base = build_backbone(self.config.backbone, size, self.weights)
                base = self._base
            elif tuple(self._base.input_shape[1:3]) == (size, size):
                base = self._base
            else:  # same convolutions at another input size
                base = build_backbone(self.config.backbone, size, None)
                base.set_weights(self._base.get_weights())
            self._embedders[size] = Embedder(
                self.config.backbone, size, pooling=self.config.pooling, base=base
            )
        return self._embedders[size]

    def embed(
        self,
        paths: Sequence[str | os.PathLike],
        shas: Sequence[str] | None = None,
        views: Sequence[str] | None = None,
        cache: EmbeddingCache | None = None,
        progress: bool = False,
        hooks: TrainingHooks | None = None,
    ) -> np.ndarray:
        """(N, V, D) embeddings of photos under `views`, all sizes concatenated.

        `shas` (content hashes) key the cache and seed the augmentations;
        without them the path is used as the seed and nothing is cached.
        `hooks` (ml.hooks): progress and a stop check after each computed batch.
        """
        views = list(views or self.config.predict_views)
        if shas is None:
            shas, cache = [str(p) for p in paths], None
        parts = [
            embed_photos(
                self.embedder(s),
                paths,
                shas,
                views,
                cache,
                self.config.batch_size,
                progress,
                desc=f"embedding {s}px",
                on_batch=None if hooks is None else _embed_hook(hooks),
            )
            for s in self.config.image_sizes
        ]
        return np.concatenate(parts, axis=-1)

    # ---------------------------------------------------------------- fitting
    def fit_embeddings(
        self,
        x_train: np.ndarray,
        y_train: Sequence[int],
        groups: Sequence[str] | None = None,
        x_val: np.ndarray | None = None,
        y_val: Sequence[int] | None = None,
    ) -> RustClassifier:
        """Fit head, calibration and threshold on embeddings.

        `x_train` is (N, V, D) with the training views, the prediction views
        first (`ClassifierConfig.train_views`: photo and mirror, then any tiles;
        these give the out-of-fold calibration); `x_val` is (M, T, D) with the
        prediction views.
        """
        from sklearn.model_selection import StratifiedGroupKFold

        t0 = time.perf_counter()
        y = np.asarray(y_train, dtype=int)
        if len(set(y.tolist())) < 2:
            raise ValueError("training needs photos of both classes (rust and no rust)")
        n, v, d = x_train.shape
        tta = len(self.config.predict_views)
        if self.config.tile_grids and v < tta:
            raise ValueError(
                f"x_train has {v} views; tile scoring needs the {tta} prediction views"
            )
        self.head = self._fit_head(x_train, y)
        photo = self.photo_embeddings(x_train)  # as predict_embeddings sees a photo
        unit = photo / np.maximum(np.linalg.norm(photo, axis=1, keepdims=True), 1e-7)
        self.centre = unit.mean(axis=0).astype(np.float32)

        # out-of-fold logits on the training photos for calibration + threshold
        groups = np.asarray(groups if groups is not None else np.arange(n)).astype(str)
        k = min(self.config.calibration_folds, len(set(groups.tolist())), int(np.bincount(y).min()))
        oof_logits, oof_y = [], []
        if k >= 2:
            folds = StratifiedGroupKFold(k, shuffle=True, random_state=self.config.seed)
            for tr, te in folds.split(np.zeros(n), y, groups):
                if len(set(y[tr].tolist())) < 2:
                    continue
                h = self._fit_head(x_train[tr], y[tr])
                oof_logits.append(self._photo_logits(h, x_train[te, :tta]))
                oof_y.append(y[te])
        if x_val is not None and y_val is not None and len(y_val):
            oof_logits.append(self._photo_logits(self.head, x_val))
            oof_y.append(np.asarray(y_val, dtype=int))
        if oof_logits:
            z, zy = np.concatenate(oof_logits), np.concatenate(oof_y)
            self.head.platt_a, self.head.platt_b = _fit_platt(z, zy)
            calibrated = 1 / (1 + np.exp(-(self.head.platt_a * z + self.head.platt_b)))
            self.threshold = threshold_for_recall(zy, calibrated, self.config.target_recall)
        else:
            self.threshold = 0.5
        self._head_model = self.head_model()
        self.info["fit_head_s"] = round(time.perf_counter() - t0, 3)
        self.info["calibration_photos"] = int(sum(len(a) for a in oof_y))
        return self

    def _tile_slice(self) -> slice:
        """Where the tile views are on axis 1 of prediction (and training) embeddings."""
        nt = len(self.config.photo_views)
        return slice(nt, nt + len(self.config.tile_views))

    def photo_embeddings(self, x: np.ndarray) -> np.ndarray:
        """(N, V, D) prediction-view embeddings -> (N, D): the mean of the whole-photo views
        (what the head scores for the photo itself, and the queue's typicality measures)."""
        return np.asarray(x)[:, : len(self.config.photo_views)].mean(axis=1)

    def _fit_head(self, x: np.ndarray, y: np.ndarray) -> HeadParams:
        """The linear head on (N, V, D) training views: every whole-photo view with its photo's
        label; with tile scoring also every tile of a no-rust photo (a negative), and the
        `tile_positives` tiles of each rust photo that a first, photo-only head scores
        highest (rust is somewhere in a rust photo, but not in every tile)."""
        n, v, d = x.shape
        tiles = self._tile_slice()
        if tiles.start == tiles.stop:
            return _fit_linear(x.reshape(n * v, d), np.repeat(y, v), self.config)
        keep = [i for i in range(v) if not tiles.start <= i < tiles.stop]
        rows, labels = [x[:, keep].reshape(-1, d)], [np.repeat(y, len(keep))]
        rows.append(x[y == 0, tiles].reshape(-1, d))
        labels.append(np.zeros(len(rows[-1]), dtype=int))
        k = min(self.config.tile_positives, tiles.stop - tiles.start)
        if k and (y == 1).any():
            first = _fit_linear(rows[0], labels[0], self.config)
            rust = x[y == 1, tiles]  # (R, T, D)
            best = np.argsort(-first.logits(rust), axis=1)[:, :k]
            rows.append(np.take_along_axis(rust, best[..., None], axis=1).reshape(-1, d))
            labels.append(np.ones(len(rows[-1]), dtype=int))
        return _fit_linear(np.concatenate(rows), np.concatenate(labels), self.config)

    def _photo_logits(self, head: HeadParams, x: np.ndarray) -> np.ndarray:
        """(N, T, D) prediction views -> (N,) photo logits: the whole photo's, or with tile
        scoring the highest of the photo's and its tiles'."""
        z = head.logits(self.photo_embeddings(x))
        tiles = self._tile_slice()
        if tiles.start == tiles.stop:
            return z
        return np.maximum(z, head.logits(np.asarray(x)[:, tiles]).max(axis=1))

    def fit(
        self,
        train: Sequence,
        val: Sequence | None = None,
        cache: EmbeddingCache | None = None,
        progress: bool = False,
        log_dir: Path | None = None,
        hooks: TrainingHooks | None = None,
    ) -> RustClassifier:
        """Train on dataset photos (`ml.dataset.Photo`: path, sha256, label, group).

        `hooks` (ml.hooks.TrainingHooks): progress per embedding batch (phase
        "classifier"), a stop check per batch (TrainingCancelled)."""
        train = [p for p in train if p.label is not None]
        val = [p for p in (val or []) if p.label is not None]
        if not train:
            raise ValueError("no labelled training photos")
        t0 = time.perf_counter()
        if self.config.fine_tune_layers > 0:
            self._fine_tune(train, progress, log_dir, hooks)
        x = self.embed(
            [p.path for p in train],
            [p.sha256 for p in train],
            self.config.train_views,
            cache,
            progress,
            hooks,
        )
        xv = (
            self.embed([p.path for p in val], [p.sha256 for p in val], None, cache, progress, hooks)
            if val
            else None
        )
        self.info["embed_s"] = round(time.perf_counter() - t0, 3)
        self.fit_embeddings(
            x,
            [p.label for p in train],
            [p.group or p.id for p in train],
            xv,
            [p.label for p in val] if val else None,
        )
        self.info.update(
            train_photos=len(train), val_photos=len(val), fit_s=round(time.perf_counter() - t0, 3)
        )
        if log_dir is not None:
            self._log_scalars(
                log_dir, x, [p.label for p in train], xv, [p.label for p in val] if val else None
            )
        return self

    def _fine_tune(
        self, train: Sequence, progress: bool, log_dir: Path | None, hooks: TrainingHooks | None
    ) -> None:
        """Train the top of the backbone with a temporary dense head on augmented crops."""
        import keras

        from ml.backbones import preprocess

        size = max(self.config.image_sizes)
        emb = self.embedder(size)
        base = emb.base
        for layer in base.layers:
            layer.trainable = False
        for layer in base.layers[-self.config.fine_tune_layers :]:
            if not isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = True
        inp = keras.Input((size, size, 3))
        feat = keras.layers.GlobalAveragePooling2D()(
            base(preprocess(self.config.backbone, inp), training=False)
        )
        out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dropout(0.3)(feat))
        model = keras.Model(inp, out)
        model.compile(keras.optimizers.Adam(self.config.fine_tune_lr), "binary_crossentropy")
        y = np.asarray([p.label for p in train], dtype=np.float32)
        callbacks = []
        if hooks is not None:
            callbacks.append(
                hooks.keras_callback("classifier fine-tune", self.config.fine_tune_epochs)
            )
        if log_dir is not None:
            callbacks.append(keras.callbacks.TensorBoard(str(Path(log_dir) / "fine_tune")))
        for epoch in range(self.config.fine_tune_epochs):
            model.fit(
                self._fine_tune_data(train, y, f"aug{100 + epoch}", size, epoch),
                epochs=epoch + 1,
                initial_epoch=epoch,
                verbose=1 if progress else 0,
                callbacks=callbacks,
                shuffle=False,  # the dataset shuffles itself; this only silences Keras
            )
        for layer in base.layers:
            layer.trainable = False
        # the weights changed: rebuild embedders so cache keys follow the new weights
        self._base = base
        self._embedders = {}
        self.info["fine_tuned_layers"] = self.config.fine_tune_layers

    def _fine_tune_data(self, train: Sequence, y: np.ndarray, view: str, size: int, epoch: int):
        """One epoch of fine-tuning batches, streamed: each photo's `view` is decoded from its
        file when the tf.data pipeline reaches it (never the whole set in memory)."""
        import tensorflow as tf

        from ml.images import load_views

        def load(path, sha):
            return load_views(path.decode(), [view], size, sha.decode())[0]

        def read(path, sha, label):
            pixels = tf.numpy_function(load, [path, sha], tf.uint8, stateful=False)
            pixels.set_shape((size, size, 3))
            return tf.cast(pixels, tf.float32), label

        records = ([str(p.path) for p in train], [p.sha256 for p in train], y)
        return (
            tf.data.Dataset.from_tensor_slices(records)
            .shuffle(len(train), seed=self.config.seed + epoch)
            .map(read, num_parallel_calls=tf.data.AUTOTUNE)
            .batch(self.config.batch_size)
            .prefetch(2)
        )

    def _log_scalars(self, log_dir: Path, x, y, xv, yv) -> None:
        import tensorflow as tf

        from ml.metrics import classification_metrics

        writer = tf.summary.create_file_writer(str(Path(log_dir) / "classifier"))
        tta = len(self.config.predict_views)
        with writer.as_default():
            for name, xs, ys in (("train", x[:, :tta], y), ("val", xv, yv)):
                if xs is None or ys is None or len(set(ys)) < 2:
                    continue
                m = classification_metrics(ys, self.predict_embeddings(xs), self.threshold)
                for key in ("accuracy", "roc_auc", "recall_rust", "precision_rust"):
                    tf.summary.scalar(f"{name}/{key}", m[key], step=0)
            tf.summary.scalar("threshold", self.threshold, step=0)
        writer.flush()

    # ---------------------------------------------------------------- predicting
    def predict_embeddings(self, x: np.ndarray) -> np.ndarray:
        """(N, T, D) prediction-view embeddings -> (N,) calibrated rust probability.

        With tile scoring, the highest of the photo's and its tiles' probabilities (the
        calibration is monotone, so this is the calibrated maximum logit)."""
        if self._head_model is None:
            raise RuntimeError("classifier is not fitted")
        x = np.asarray(x, dtype=np.float32)
        n, tiles = len(x), self._tile_slice()
        if tiles.start != tiles.stop and x.shape[1] < tiles.stop:
            raise ValueError(f"{x.shape[1]} views given; this classifier scores {tiles.stop}")
        inputs = [self.photo_embeddings(x)]
        if tiles.start != tiles.stop:
            inputs.append(x[:, tiles].reshape(-1, x.shape[-1]))
        out = np.asarray(self._head_model(np.concatenate(inputs), training=False), np.float64)
        out = out.reshape(-1)
        return out[:n] if len(out) == n else np.maximum(out[:n], out[n:].reshape(n, -1).max(1))

    def predict(
        self,
        paths: Sequence[str | os.PathLike],
        shas: Sequence[str] | None = None,
        cache: EmbeddingCache | None = None,
        progress: bool = False,
    ) -> np.ndarray:
        """Rust probability of each photo file."""
        if not len(paths):
            return np.zeros(0)
        return self.predict_embeddings(self.embed(paths, shas, None, cache, progress))

    def verdicts(self, prob: np.ndarray) -> np.ndarray:
        return (np.asarray(prob) >= self.threshold).astype(int)

    # ---------------------------------------------------------------- persistence
    def head_model(self):
        """The head as a Keras model: embedding (D,) -> calibrated probability."""
        import keras

        h = self.head
        d = h.coef.shape[0]
        inp = keras.Input((d,), name="embedding")
        norm = keras.layers.Normalization(mean=h.mean, variance=h.scale**2, name="standardise")
        dense = keras.layers.Dense(1, activation="sigmoid", name="rust")
        out = dense(norm(inp))
        model = keras.Model(inp, out, name="rust_classifier_head")
        dense.set_weights(
            [
                (h.platt_a * h.coef).reshape(d, 1),
                np.array([h.platt_a * h.intercept + h.platt_b], dtype=np.float32),
            ]
        )
        return model

    def save(self, directory: str | os.PathLike) -> None:
        """Write classifier_backbone.keras, classifier_head.keras, classifier.json."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        size = self.config.image_sizes[0]
        base = self.embedder(size).base
        for name, model in (
            ("classifier_backbone.keras", base),
            ("classifier_head.keras", self._head_model),
        ):
            tmp = directory / f".{name}.tmp.keras"
            model.save(tmp)
            os.replace(tmp, directory / name)
        meta = {
            "config": asdict(self.config),
            "threshold": self.threshold,
            "centre": None if self.centre is None else [round(float(c), 6) for c in self.centre],
            "info": self.info,
            "embedding_key": {s: self.embedder(s).key for s in self.config.image_sizes},
        }
        write_atomic(directory / "classifier.json", json.dumps(meta, indent=1).encode())

    @classmethod
    def load(cls, directory: str | os.PathLike) -> RustClassifier:
        import keras

        directory = Path(directory)
        meta = json.loads((directory / "classifier.json").read_text())
        config = ClassifierConfig.from_dict(meta["config"])
        base = keras.saving.load_model(directory / "classifier_backbone.keras", compile=False)
        head = keras.saving.load_model(directory / "classifier_head.keras", compile=False)
        self = cls(config, weights=None, base=base)
        self._head_model = head
        self.threshold = float(meta["threshold"])
        centre = meta.get("centre")  # older artifacts have none: no typicality weighting
        self.centre = None if centre is None else np.asarray(centre, dtype=np.float32)
        self.info = meta.get("info", {})
        return self
