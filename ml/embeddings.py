"""Frozen-backbone embeddings of photos, cached on disk per photo hash.

A classifier refit then costs a logistic regression on cached vectors
(seconds for thousands of photos), and a new photo costs one forward pass.
The cache key names the backbone, input size, pooling and a fingerprint of
the actual weights, so a different or fine-tuned backbone never reads stale
vectors::

    <cache>/<backbone>-<size>-<pooling>-<weights fingerprint>/<view>/<sha256>.npy

On a CPU the forward pass runs in LiteRT (the TensorFlow Lite runtime, with
its XNNPACK kernels): the same network and weights, converted once per key
and kept beside the vectors as ``<cache>/<key>/embedder.tflite``. It gives
the same vectors as Keras to ~1e-4 and is 3-4x faster on a 2-core CPU
(benchmarks/speed.py). On a GPU, or with RUSTWATCH_EMBED_RUNTIME=keras, Keras
runs it. Its threads: RUSTWATCH_LITERT_THREADS (`ml.litert`).

TensorFlow is imported lazily, inside the functions that need it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ml.images import iter_batches
from ml.voc import write_atomic

log = logging.getLogger(__name__)

POOLINGS = ("avg", "avgmax")
RUNTIMES = ("auto", "keras", "litert")


def default_cache_dir() -> Path:
    """$RUSTWATCH_EMBEDDING_CACHE, else ~/.cache/rustwatch/embeddings."""
    env = os.environ.get("RUSTWATCH_EMBEDDING_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "rustwatch" / "embeddings"


def resolve_runtime(runtime: str | None = None) -> str:
    """The runtime that will run the backbone, "keras" or "litert", for a requested one.

    None means $RUSTWATCH_EMBED_RUNTIME, else "auto".
    "auto" is LiteRT on a CPU-only machine where ai-edge-litert is installed,
    Keras where a GPU is visible (TensorFlow is faster there) or LiteRT is not.
    """
    runtime = runtime or os.environ.get("RUSTWATCH_EMBED_RUNTIME") or "auto"
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown embedding runtime {runtime!r}; choose one of {RUNTIMES}")
    if runtime != "auto":
        return runtime
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        return "keras"
    try:
        import ai_edge_litert.interpreter  # noqa: F401
    except ImportError:
        return "keras"
    return "litert"


# images per network call: LiteRT plans its tensor memory for the whole call (a batch of
# 64 photos x 3 views at 448 px held 3.3 GB; 16 images hold 0.3 GB) at the same speed
EMBED_CHUNK = 16


class Embedder:
    """A backbone without top plus global pooling: pixels -> one vector per photo.

    `pooling` "avg" is global average pooling (the usual transfer-learning
    feature); "avgmax" concatenates global max pooling, which keeps small
    rust patches that an average over the photo would wash out.
    """

    def __init__(
        self,
        backbone: str = "mobilenet_v2_035",
        image_size: int = 224,
        weights: str | None = "imagenet",
        pooling: str = "avg",
        base=None,
        runtime: str | None = None,
        model_dir: str | os.PathLike | None = None,
    ):
        """`runtime`: see resolve_runtime. `model_dir`: where the converted LiteRT
        model is kept (default: the embedding cache folder)."""
        import keras

        from ml.backbones import build_backbone, get_spec

        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose one of {POOLINGS}")
        self.backbone, self.image_size, self.pooling = backbone, image_size, pooling
        self.spec = get_spec(backbone)
        self.base = base if base is not None else build_backbone(backbone, image_size, weights)
        inp = keras.Input((image_size, image_size, 3), dtype="float32")
        from ml.backbones import preprocess

        fmap = self.base(preprocess(backbone, inp), training=False)
        pooled = [keras.layers.GlobalAveragePooling2D()(fmap)]
        if pooling == "avgmax":
            pooled.append(keras.layers.GlobalMaxPooling2D()(fmap))
        out = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate()(pooled)
        self.model = keras.Model(inp, out, name=f"embed_{backbone}_{image_size}")
        self._fn = None
        self.key = f"{backbone}-{image_size}-{pooling}-{weights_fingerprint(self.base)[:12]}"
        self.runtime = resolve_runtime(runtime)
        self._model_dir = Path(model_dir) if model_dir is not None else default_cache_dir()
        self._interpreter = None
        self._shape: tuple | None = None  # the input shape the interpreter is planned for
        self._lock = threading.Lock()  # a LiteRT interpreter serves one call at a time

    @property
    def dim(self) -> int:
        return int(self.model.output.shape[-1])

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """(N, size, size, 3) uint8/float 0..255 -> (N, dim) float32, at most `EMBED_CHUNK`
        images per network call."""
        if len(pixels) > EMBED_CHUNK:
            return np.concatenate(
                [
                    self.embed_pixels(pixels[i : i + EMBED_CHUNK])
                    for i in range(0, len(pixels), EMBED_CHUNK)
                ]
            )
        x = np.ascontiguousarray(pixels, dtype=np.float32)
        if self.runtime == "litert":
            return self._embed_litert(x)
        import tensorflow as tf

        if self._fn is None:
            self._fn = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        return np.asarray(self._fn(tf.convert_to_tensor(x)), dtype=np.float32)

    @property
    def litert_path(self) -> Path:
        return self._model_dir / self.key / "embedder.tflite"

    def _embed_litert(self, x: np.ndarray) -> np.ndarray:
        with self._lock:
            if self._interpreter is None:
                from ml.litert import interpreter

                self._interpreter = interpreter(self._litert_model())
            it = self._interpreter
            inp = it.get_input_details()[0]["index"]
            if self._shape != x.shape:  # re-plan only when the batch size changes
                it.resize_tensor_input(inp, list(x.shape), strict=True)
                it.allocate_tensors()
                self._shape = x.shape
            it.set_tensor(inp, x)
            it.invoke()
            return np.array(it.get_tensor(it.get_output_details()[0]["index"]), np.float32)

    def _litert_model(self) -> bytes:
        """The converted model: read from model_dir, else converted once and stored there."""
        path = self.litert_path
        if path.is_file():
            return path.read_bytes()
        import tensorflow as tf

        log.info("converting %s to LiteRT (once per backbone and weights)", self.key)
        with tempfile.TemporaryDirectory(prefix="rustwatch-embedder-") as tmp:
            self.model.export(tmp, format="tf_saved_model", verbose=False)
            data = tf.lite.TFLiteConverter.from_saved_model(tmp).convert()
        try:
            write_atomic(path, data)
        except OSError as exc:  # a read-only cache costs a conversion per process, no more
            log.warning("could not keep the LiteRT model at %s: %s", path, exc)
        return data


def weights_fingerprint(model) -> str:
    """sha256 over all weight values: identical weights, identical cache key."""
    h = hashlib.sha256()
    for w in model.weights:
        h.update(np.asarray(w.numpy() if hasattr(w, "numpy") else w).tobytes())
    return h.hexdigest()


class EmbeddingCache:
    """On-disk .npy vectors per (embedder key, view, photo sha256)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_cache_dir()

    def path(self, key: str, view: str, sha256: str) -> Path:
        return self.root / key / view / f"{sha256}.npy"

    def get(self, key: str, view: str, sha256: str) -> np.ndarray | None:
        p = self.path(key, view, sha256)
        if not p.is_file():
            return None
        try:
            return np.load(p, allow_pickle=False)
        except (OSError, ValueError):
            log.warning("unreadable cache entry %s; recomputing", p)
            return None

    def put(self, key: str, view: str, sha256: str, vector: np.ndarray) -> None:
        import io

        buf = io.BytesIO()
        np.save(buf, np.asarray(vector, dtype=np.float32), allow_pickle=False)
        write_atomic(self.path(key, view, sha256), buf.getvalue())


def embed_photos(
    embedder: Embedder,
    paths: Sequence[str | os.PathLike],
    shas: Sequence[str],
    views: Sequence[str] = ("full",),
    cache: EmbeddingCache | None = None,
    batch_size: int = 64,
    progress: bool = False,
    desc: str = "embedding",
    on_batch: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """(N, len(views), dim) embeddings; cached vectors are read, the rest computed.

    `on_batch(done, total)` is called after each computed batch (photos embedded of the
    photos that were not cached); an exception it raises stops the embedding there.

    Missing photos are decoded in a thread pool (JPEG draft mode) while the
    network embeds the previous batch. Decoding errors raise ImageError
    naming the file.
    """
    n, v = len(paths), len(views)
    out = np.zeros((n, v, embedder.dim), dtype=np.float32)
    todo: list[int] = []
    for i, sha in enumerate(shas):
        vecs = [cache.get(embedder.key, view, sha) for view in views] if cache else [None]
        if cache and all(x is not None and x.shape == (embedder.dim,) for x in vecs):
            out[i] = np.stack(vecs)
        else:
            todo.append(i)
    if not todo:
        return out
    items = [(paths[i], shas[i]) for i in todo]
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc=desc, unit="photo", leave=False)
    for start, pixels in iter_batches(items, views, embedder.image_size, batch_size):
        b = pixels.shape[0]
        flat = pixels.reshape(b * v, *pixels.shape[2:])
        emb = embedder.embed_pixels(flat).reshape(b, v, -1)
        for j in range(b):
            i = todo[start + j]
            out[i] = emb[j]
            if cache:
                for k, view in enumerate(views):
                    cache.put(embedder.key, view, shas[i], emb[j, k])
        if bar:
            bar.update(b)
        if on_batch is not None:
            on_batch(start + b, len(items))
    if bar:
        bar.close()
    return out
