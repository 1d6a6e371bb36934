"""The training loop shared by both detector families: data, schedule, fit, timings."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np

from ml.detector.config import DetectorConfig
from ml.detector.interface import (
    RustDetector,
    build_model,
    family_module,
    gpu_visible,
    load_init_weights,
    uses_mixed_precision,
)
from ml.detector.preprocessing import (
    DetectorInputError,
    DetSample,
    check_samples,
    input_error,
    load_image,
)

log = logging.getLogger(__name__)


def make_dataset(
    samples: list[DetSample], config: DetectorConfig, *, training: bool, repeat_seed: int = 0
):
    """The training `tf.data.Dataset` of `config`'s family."""
    module = family_module(config.family)
    return module.make_dataset(samples, config, training=training, repeat_seed=repeat_seed)


def make_optimizer(config: DetectorConfig, steps_per_epoch: int):
    """AdamW on a cosine schedule with linear warm-up, gradients clipped."""
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
    return keras.optimizers.AdamW(
        learning_rate=schedule, weight_decay=config.weight_decay, global_clipnorm=10.0
    )


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
    init: Path | None = None,
    hooks=None,
) -> RustDetector:
    """Train a rust detector of `config.family` on photos with boxes (and masks, which the
    score map prefers); photos without boxes are negatives. `val` (optional, boxed) is
    scored with COCO AP every `eval_every` epochs and logged (it never steers training).
    `init`: a trained detector's folder to start from instead of `weights` (a warm start;
    WarmStartError unless it has this config's architecture). `hooks` (ml.hooks.TrainingHooks):
    progress per epoch, a stop check per batch (TrainingCancelled)."""
    import keras

    if not train:
        raise DetectorInputError("train_detector needs at least one photo")
    keras.utils.set_random_seed(config.seed)
    start = time.perf_counter()
    ds = make_dataset(train, config, training=True)
    if val:
        check_samples(val)  # fail early, naming the file, on a bad val photo or box
        for s in val:
            load_image(s.image_path, min_side=1)  # JPEG at 1/8 scale: a quick full read
    model = build_model(config, None if init is not None else weights)
    if init is not None:
        load_init_weights(model, config, init)
    steps = math.ceil(len(train) / config.batch_size)
    module = family_module(config.family)
    # XLA compiles the RetinaNet graph for ~a minute on a CPU and gains little there
    module.compile_model(model, config, make_optimizer(config, steps), jit_compile=gpu_visible())
    detector = RustDetector(model, config)
    callbacks: list = [] if hooks is None else [hooks.keras_callback("detector", config.epochs)]
    if val:
        callbacks.append(_val_callback(detector, val, max(1, eval_every)))
    if log_dir is not None:
        callbacks.append(keras.callbacks.TensorBoard(str(log_dir), write_graph=False))
    try:
        # the dataset shuffles itself; shuffle=False only silences a Keras warning
        history = model.fit(
            ds,
            epochs=config.epochs,
            verbose=1 if progress else 0,
            callbacks=callbacks,
            shuffle=False,
        )
    except Exception as exc:  # a photo that broke while streamed: name it, as up front
        if (error := input_error(exc)) is None:
            raise
        raise error from exc
    seconds = time.perf_counter() - start
    losses = history.history.get("loss", [])
    detector.info = {
        "family": config.family,
        "train_photos": len(train),
        "train_boxes": int(sum(len(np.asarray(s.boxes).reshape(-1, 4)) for s in train)),
        "train_masks": sum(s.mask_path is not None for s in train),
        "train_seconds": round(seconds, 1),
        "seconds_per_epoch": round(seconds / max(1, config.epochs), 2),
        "final_loss": float(losses[-1]) if losses else None,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "mixed_precision": uses_mixed_precision(config),
        "init": str(init) if init is not None else (weights or "random"),
    }
    log.info(
        "%s detector trained: %d photos, %d epochs, %.0f s",
        config.family,
        len(train),
        config.epochs,
        seconds,
    )
    return detector
