"""Frozen-backbone embeddings of photos, cached on disk per photo hash.

A classifier refit then costs a logistic regression on cached vectors
(seconds for thousands of photos), and a new photo costs one forward pass.
The cache key names the backbone, input size, pooling and a fingerprint of
the actual weights, so a different or fine-tuned backbone never reads stale
vectors::

    <cache>/<backbone>-<size>-<pooling>-<weights fingerprint>/<view>/<sha256>.npy

TensorFlow is imported lazily, inside the functions that need it.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ml.images import iter_batches
from ml.voc import write_atomic

log = logging.getLogger(__name__)

POOLINGS = ("avg", "avgmax")


def default_cache_dir() -> Path:
    """$RUSTWATCH_EMBEDDING_CACHE, else ~/.cache/rustwatch/embeddings."""
    env = os.environ.get("RUSTWATCH_EMBEDDING_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "rustwatch" / "embeddings"


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
    ):
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

    @property
    def dim(self) -> int:
        return int(self.model.output.shape[-1])

    def embed_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """(N, size, size, 3) uint8/float 0..255 -> (N, dim) float32."""
        import tensorflow as tf

        if self._fn is None:
            self._fn = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        x = tf.convert_to_tensor(np.asarray(pixels, dtype=np.float32))
        return np.asarray(self._fn(x), dtype=np.float32)


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
) -> np.ndarray:
    """(N, len(views), dim) embeddings; cached vectors are read, the rest computed.

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
    if bar:
        bar.close()
    return out
