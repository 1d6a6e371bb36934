"""Serving the trained detector: its network in LiteRT on a CPU, the rest as trained.

`load_detector(folder)` gives a `RustDetector` whose network forward pass runs in
LiteRT (the TensorFlow Lite runtime, XNNPACK kernels) where that is faster (a
CPU-only machine; see `ml.embeddings.resolve_runtime`), and in Keras otherwise.
Everything around the network (letterboxing, anchor decoding, top-k, NMS, the
mapping back to original pixels) is the detector's own code, so the boxes are the
same to float tolerance (tests/ml/test_serving.py).

On a 2-core CPU the LiteRT network takes a third of Keras' CPU time (~19 vs ~63 ms a
photo at 384 px), the whole detector ~1.7x less wall time (benchmarks/loop.py scoring).
It runs outside the predictor's graph on the real photos only, so a lone photo costs
one forward pass. Threads: RUSTWATCH_LITERT_THREADS (`ml.litert`). Float16 and
dynamic-range (int8 weight) conversions were not reliably faster on this CPU (-20 %
CPU time at batch 1, +10-20 % at batch 4, within the shared machine's noise) for
boxes that move, so the network stays float32.

The converted network is kept beside the embedding cache, keyed by the weights'
fingerprint and the input size, so each deployed version converts once per
machine: `<cache>/detectors/<fingerprint>-<size>.tflite`.

RUSTWATCH_DETECT_RUNTIME (keras | litert | auto) picks the runtime, like
RUSTWATCH_EMBED_RUNTIME for the classifier's backbone; the default is auto (see
DEFAULT_RUNTIME).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

from ml.voc import write_atomic

log = logging.getLogger(__name__)

__all__ = ["LiteRTNetwork", "load_detector"]

# LiteRT on a CPU-only machine with ai-edge-litert, Keras where a GPU is visible
# (ml.embeddings.resolve_runtime); benchmarks/loop.py scoring measures both
DEFAULT_RUNTIME = "auto"


def detector_runtime(runtime: str | None = None) -> str:
    """ "keras" or "litert" for a requested runtime (None: $RUSTWATCH_DETECT_RUNTIME, auto)."""
    from ml.embeddings import resolve_runtime

    return resolve_runtime(runtime or os.environ.get("RUSTWATCH_DETECT_RUNTIME") or DEFAULT_RUNTIME)


def load_detector(
    directory: str | os.PathLike,
    runtime: str | None = None,
    cache_dir: str | os.PathLike | None = None,
):
    """The detector saved in `directory`, ready to predict, on the faster runtime.

    `cache_dir`: where converted networks are kept (default: the embedding cache)."""
    from ml.detector import RustDetector

    detector = RustDetector.load(Path(directory))
    if detector.config.family != "retinanet" or detector_runtime(runtime) != "litert":
        return detector
    try:
        network = LiteRTNetwork(detector.model, detector.config, cache_dir)
        network.prepare()  # convert and plan now, eagerly: never inside a traced predict call
    except Exception:  # the detector still serves, at Keras speed
        log.exception("the detector network could not run in LiteRT; serving it with Keras")
        return detector
    detector.model = network
    return detector


class LiteRTNetwork:
    """A RetinaNet model whose forward pass runs in LiteRT; every other attribute (anchor
    generator, prediction decoder, config) is the Keras model's own.

    The converted network takes any batch size; one interpreter is planned per batch
    size met (at most `predict_batch`: a lone photo costs one photo's pass)."""

    def __init__(self, model: Any, config: Any, cache_dir: str | os.PathLike | None = None):
        from ml.embeddings import default_cache_dir, weights_fingerprint

        object.__setattr__(self, "_model", model)
        object.__setattr__(self, "_config", config)
        object.__setattr__(self, "_lock", threading.Lock())
        object.__setattr__(self, "_flatbuffer", None)
        object.__setattr__(self, "_interpreters", {})  # batch size -> planned interpreter
        object.__setattr__(self, "_size", config.image_size)
        key = f"{weights_fingerprint(model)[:16]}-{config.image_size}"
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        object.__setattr__(self, "path", root / "detectors" / f"{key}.tflite")

    # the Keras model's attributes (anchor_generator, prediction_decoder, ...) pass through
    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._model, name, value)

    def __call__(self, x, training: bool = False) -> dict[str, Any]:
        """{"cls_logits": (B, A, 1), "bbox_regression": (B, A, 4)}, as the Keras model gives
        (the detector's own predictor calls `forward_numpy` instead, outside its graph)."""
        import tensorflow as tf

        if isinstance(x, np.ndarray) or tf.executing_eagerly():
            cls, box = self.forward_numpy(np.asarray(x, np.float32))
            return {"cls_logits": tf.constant(cls), "bbox_regression": tf.constant(box)}
        self.prepare()
        cls, box = tf.numpy_function(self.forward_numpy, [x], [tf.float32, tf.float32])
        cls.set_shape((x.shape[0], self._anchors, 1))
        box.set_shape((x.shape[0], self._anchors, 4))
        return {"cls_logits": cls, "bbox_regression": box}

    def _anchor_count(self) -> int:
        import tensorflow as tf

        size = self._size
        anchors = self._model.anchor_generator(tf.zeros((1, size, size, 3)))
        return int(sum(int(a.shape[0]) for a in anchors.values()))

    def forward_numpy(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The network on a (B, S, S, 3) float32 batch: (class logits, box deltas)."""
        x = np.ascontiguousarray(x, dtype=np.float32)
        size = self._size
        if x.ndim != 4 or x.shape[1:] != (size, size, 3) or len(x) < 1:
            raise ValueError(
                f"LiteRT detector expects a batch of shape (B, {size}, {size}, 3), not {x.shape}"
            )
        self.prepare()
        with self._lock:  # an interpreter serves one call at a time
            it = self._interpreter(len(x))
            it.set_tensor(it.get_input_details()[0]["index"], x)
            it.invoke()
            outs = [
                np.array(it.get_tensor(d["index"]), np.float32) for d in it.get_output_details()
            ]
        by_width = {o.shape[-1]: o for o in outs}
        return by_width[1], by_width[4]

    def _interpreter(self, batch: int):
        """The interpreter planned for `batch` photos (under the lock)."""
        it = self._interpreters.get(batch)
        if it is None:
            from ml.litert import interpreter

            it = interpreter(self._flatbuffer)
            inp = it.get_input_details()[0]["index"]
            it.resize_tensor_input(inp, [batch, self._size, self._size, 3], strict=True)
            it.allocate_tensors()
            self._interpreters[batch] = it
        return it

    def prepare(self) -> None:
        """Convert (once per weights, then read from the cache) and plan the interpreter of
        the configured batch."""
        with self._lock:
            if self._flatbuffer is not None:
                return
            object.__setattr__(self, "_flatbuffer", self._converted())
            object.__setattr__(self, "_anchors", self._anchor_count())
            self._interpreter(self._config.predict_batch)

    def _converted(self) -> bytes:
        """The LiteRT flatbuffer: read from the cache, else converted once and kept there."""
        if self.path.is_file():
            return self.path.read_bytes()
        import tensorflow as tf

        log.info("converting the detector network to LiteRT (%s)", self.path.name)
        model, size = self._model, self._size
        spec = tf.TensorSpec((None, size, size, 3), tf.float32)  # any batch size

        @tf.function(input_signature=[spec])
        def forward(x):
            out = model(x, training=False)
            return {"cls_logits": out["cls_logits"], "bbox_regression": out["bbox_regression"]}

        # a module of its own: the forward pass and the weights it reads, no training state
        module = tf.Module()
        module.weights = [getattr(v, "value", v) for v in model.weights]
        module.forward = forward
        with tempfile.TemporaryDirectory(prefix="rustwatch-detector-") as tmp:
            tf.saved_model.save(module, tmp, signatures=forward.get_concrete_function())
            data = tf.lite.TFLiteConverter.from_saved_model(tmp).convert()
        try:
            write_atomic(self.path, data)
        except OSError as exc:  # a read-only cache costs a conversion per process, no more
            log.warning("could not keep the LiteRT detector at %s: %s", self.path, exc)
        return data
