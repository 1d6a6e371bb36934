"""LiteRT, the CPU runtime of the embedding backbone, against Keras: same vectors."""

from __future__ import annotations

import numpy as np
import pytest

from ml.classifier import ClassifierConfig, RustClassifier
from ml.embeddings import Embedder, resolve_runtime

TINY = dict(backbone="mobilenet_025", image_sizes=(48,), n_aug=1, batch_size=16)


def test_litert_gives_the_keras_vectors_and_converts_once(keras_home, tmp_path):
    keras_emb = Embedder("mobilenet_025", 48, pooling="avgmax", runtime="keras")

    def litert() -> Embedder:  # the same weights, run by LiteRT, converted into tmp_path
        return Embedder(
            "mobilenet_025",
            48,
            pooling="avgmax",
            base=keras_emb.base,
            runtime="litert",
            model_dir=tmp_path,
        )

    lite = litert()
    x = np.random.default_rng(0).uniform(0, 255, (5, 48, 48, 3)).astype(np.float32)
    got = lite.embed_pixels(x)
    np.testing.assert_allclose(got, keras_emb.embed_pixels(x), atol=1e-4)
    # another batch size re-plans the interpreter and gives the same rows
    np.testing.assert_allclose(lite.embed_pixels(x[:2]), got[:2], atol=1e-6)

    stored = tmp_path / keras_emb.key / "embedder.tflite"
    assert lite.litert_path == stored and stored.stat().st_size > 10_000
    mtime = stored.stat().st_mtime_ns
    np.testing.assert_allclose(litert().embed_pixels(x), got, atol=1e-6)
    assert stored.stat().st_mtime_ns == mtime  # read from disk, not converted again


def test_classifier_predictions_agree_across_runtimes(tiny_voc, keras_home, tmp_path, monkeypatch):
    clf = RustClassifier(ClassifierConfig(**TINY)).fit(tiny_voc.labelled())
    paths = [p.path for p in tiny_voc.photos]
    with_keras = clf.predict(paths)
    clf.save(tmp_path / "c")
    monkeypatch.setenv("RUSTWATCH_EMBED_RUNTIME", "litert")
    monkeypatch.setenv("RUSTWATCH_EMBEDDING_CACHE", str(tmp_path / "cache"))
    loaded = RustClassifier.load(tmp_path / "c")
    assert loaded.embedder(48).runtime == "litert"
    np.testing.assert_allclose(loaded.predict(paths), with_keras, atol=1e-4)


def test_runtime_choice(monkeypatch):
    monkeypatch.delenv("RUSTWATCH_EMBED_RUNTIME", raising=False)
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    assert resolve_runtime() == ("keras" if gpu else "litert")
    assert resolve_runtime("keras") == "keras"
    monkeypatch.setenv("RUSTWATCH_EMBED_RUNTIME", "keras")
    assert resolve_runtime() == "keras"
    with pytest.raises(ValueError, match="unknown embedding runtime 'onnx'"):
        resolve_runtime("onnx")
