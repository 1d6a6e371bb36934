"""The classifier end to end on tiny photos: train, artifact round trip, CLI, backbones.

A tiny backbone (MobileNet v1 0.25 with its ImageNet weights, 48 px, one
augmented view) keeps each training run to seconds.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from ml.classifier import ClassifierConfig, RustClassifier
from ml.cli import main
from ml.dataset import from_folders

TINY = dict(backbone="mobilenet_025", image_sizes=(48,), n_aug=1, batch_size=16)
TINY_ARGS = ["--backbone", "mobilenet_025", "--image-size", "48", "--n-aug", "1"]


@pytest.fixture
def tiny_config():
    return ClassifierConfig(**TINY)


def test_train_save_load_gives_identical_predictions(
    tiny_voc, tmp_path, keras_home, tiny_config, embedding_cache
):
    from ml.artifacts import load_artifact
    from ml.training import evaluate, train

    out = train(
        tiny_voc,
        tmp_path / "art",
        classifier_config=tiny_config,
        skip_detector=True,
        cache=embedding_cache,
        progress=False,
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["dataset"]["hash"] == tiny_voc.dataset_hash
    assert manifest["classifier"]["config"]["backbone"] == "mobilenet_025"
    assert 0 < manifest["thresholds"]["classifier"] <= 0.5
    assert {"tensorflow", "keras", "scikit-learn"} <= set(manifest["libraries"])
    assert manifest["timings"]["total_s"] > 0
    assert list((out / "logs").rglob("events.out.tfevents*"))  # TensorBoard logs
    assert {f.name for f in (out / "classifier").iterdir()} >= {
        "classifier_backbone.keras",
        "classifier_head.keras",
        "classifier.json",
    }

    paths = [p.path for p in tiny_voc.photos]
    art = load_artifact(out)
    before = RustClassifier.load(out / "classifier")  # a second, independent load
    prob = art.classifier.predict(paths)
    np.testing.assert_array_equal(prob, before.predict(paths))
    # the queue's typicality centre travels with the artifact
    assert before.centre is not None
    np.testing.assert_allclose(before.centre, art.classifier.centre)
    assert 0 < float(np.linalg.norm(before.centre)) <= 1 + 1e-5  # a mean of unit vectors
    # red-brown blotches vs grey-blue paint: ImageNet features separate them
    y = np.array([p.label for p in tiny_voc.photos])
    assert ((prob >= art.classifier.threshold) == y).mean() >= 0.9
    result = evaluate(art, tiny_voc, "all", cache=embedding_cache, progress=False)
    assert result["classifier"]["accuracy"] >= 0.9


def test_saved_head_matches_the_in_memory_model(tiny_voc, keras_home, tiny_config, tmp_path):
    """keras-hub's round trip for both saved networks: `keras.saving.load_model` of each file
    alone predicts what the in-memory model does, and so does the loaded classifier."""
    import keras

    clf = RustClassifier(tiny_config).fit(tiny_voc.labelled())
    paths = [p.path for p in tiny_voc.photos[:5]]
    before = clf.predict(paths)
    clf.save(tmp_path / "c")
    np.testing.assert_array_equal(RustClassifier.load(tmp_path / "c").predict(paths), before)
    rng = np.random.default_rng(0)
    for name, model, shape in (
        ("classifier_backbone.keras", clf.embedder(48).base, (3, 48, 48, 3)),
        ("classifier_head.keras", clf._head_model, (3, clf.head.coef.shape[0])),
    ):
        loaded = keras.saving.load_model(tmp_path / "c" / name)
        x = rng.uniform(-1, 1, shape).astype("float32")
        np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)


def test_config_from_dict_refuses_unknown_keys(tiny_config):
    from dataclasses import asdict

    assert ClassifierConfig.from_dict(asdict(tiny_config)) == tiny_config
    with pytest.raises(ValueError, match=r"unknown classifier config keys: image_size \(known: "):
        ClassifierConfig.from_dict({**asdict(tiny_config), "image_size": 224})


def test_embedding_cache_is_used_and_keyed_by_weights(
    tiny_voc, keras_home, tiny_config, embedding_cache
):
    clf = RustClassifier(tiny_config)
    photos = tiny_voc.photos[:4]
    args = ([p.path for p in photos], [p.sha256 for p in photos], ["full", "hflip"])
    x = clf.embed(*args, cache=embedding_cache)
    files = list(embedding_cache.root.rglob("*.npy"))
    assert len(files) == 8
    key = clf.embedder(48).key
    assert key.startswith("mobilenet_025-48-avgmax-")
    for f in files:  # poison the cache: a cached vector must be what is returned
        np.save(f, np.full(x.shape[-1], 7.0, dtype=np.float32))
    np.testing.assert_array_equal(clf.embed(*args, cache=embedding_cache), 7.0)
    random = RustClassifier(tiny_config, weights=None)
    assert random.embedder(48).key != key  # other weights, other cache entries


@pytest.mark.parametrize(
    "backbone, dim", [("efficientnet_v2_b0", 1280), ("mobilenet_v3_large", 960)]
)
def test_larger_backbones_work_by_config_without_weights(backbone, dim, tmp_path, synth):
    photo = synth.make_photo(tmp_path / "p.jpg", "rust", 0)
    clf = RustClassifier(
        ClassifierConfig(backbone=backbone, image_sizes=(64,), pooling="avg"), weights=None
    )
    x = clf.embed([photo], ["s"], ["full", "hflip"])
    assert x.shape == (1, 2, dim) and np.isfinite(x).all()


def test_fine_tuning_changes_the_backbone_and_the_cache_key(tiny_voc, keras_home):
    cfg = ClassifierConfig(**TINY, fine_tune_layers=4, fine_tune_epochs=1)
    clf = RustClassifier(cfg)
    frozen_key = RustClassifier(ClassifierConfig(**TINY)).embedder(48).key
    clf.fit(tiny_voc.labelled())
    assert clf.info["fine_tuned_layers"] == 4
    assert clf.embedder(48).key != frozen_key
    assert np.isfinite(clf.predict([tiny_voc.photos[0].path])).all()


def test_cli_train_evaluate_predict_cv(tiny_voc, source_dir, tmp_path, keras_home, capsys):
    cache = ["--cache", str(tmp_path / "emb")]
    art, data = tmp_path / "art", str(tiny_voc.root)
    assert (
        main(
            [
                "-q",
                "train",
                "--data",
                data,
                "--out",
                str(art),
                "--skip-detector",
                *TINY_ARGS,
                *cache,
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "-q",
                "evaluate",
                "--model",
                str(art),
                "--data",
                data,
                "--split",
                "all",
                "--json",
                str(tmp_path / "e.json"),
                *cache,
            ]
        )
        == 0
    )
    result = json.loads((tmp_path / "e.json").read_text())
    assert set(result["classifier"]) == {
        "accuracy",
        "roc_auc",
        "precision_rust",
        "recall_rust",
        "f1_rust",
        "threshold",
        "confusion",
    }
    assert "accuracy" in capsys.readouterr().out

    # Photos of one class only: ROC-AUC is undefined, and the JSON says null (not NaN).
    only_rust = tmp_path / "only-rust"
    shutil.copytree(source_dir / "rust", only_rust / "rust")
    one_class = from_folders(only_rust, tmp_path / "voc-rust")
    argv = ["-q", "evaluate", "--model", str(art), "--data", str(one_class.root)]
    assert main([*argv, "--split", "all", "--json", str(tmp_path / "r.json"), *cache]) == 0
    text = (tmp_path / "r.json").read_text()
    result = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert result["classifier"]["roc_auc"] is None
    assert 0 <= result["classifier"]["recall_rust"] <= 1
    capsys.readouterr()

    photo = tiny_voc.photos[0].path
    assert (
        main(["-q", "predict", "--model", str(art), str(photo), "--json", str(tmp_path / "p.json")])
        == 0
    )
    pred = json.loads((tmp_path / "p.json").read_text())["photos"][0]
    assert pred["verdict"] in ("rust", "norust") and 0 <= pred["rust_probability"] <= 1

    assert (
        main(
            [
                "-q",
                "cv",
                "--data",
                data,
                "--folds",
                "3",
                "--skip-detector",
                *TINY_ARGS,
                *cache,
                "--json",
                str(tmp_path / "cv.json"),
            ]
        )
        == 0
    )
    cv = json.loads((tmp_path / "cv.json").read_text())
    assert 0 <= cv["classifier"]["accuracy"] <= 1
    assert np.sum(cv["classifier"]["confusion"]) == len(tiny_voc.labelled())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--data", "{tmp}/nowhere", "--out", "{tmp}/a"], "not a VOC dataset folder"),
        (["evaluate", "--model", "{tmp}/nowhere", "--data", "{voc}"], "not a model artifact"),
        (["predict", "--model", "{tmp}/nowhere", "{tmp}/missing.jpg"], "missing.jpg: no such file"),
        (["predict", "--model", "{tmp}/nowhere", "{tmp}/bad.jpg"], "bad.jpg: not a readable image"),
        (["from-folders", "{tmp}/nowhere", "{tmp}/out"], "nowhere: no such folder"),
        (["cv", "--data", "{voc}", "--folds", "50", "--skip-detector"], "cannot make 50 folds"),
    ],
)
def test_cli_bad_input_prints_one_error_line(argv, message, tmp_path, tiny_voc, capsys):
    (tmp_path / "bad.jpg").write_bytes(b"not an image at all")
    argv = [a.format(tmp=tmp_path, voc=tiny_voc.root) for a in argv]
    assert main(["-q", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_cli_runs_as_a_module(tmp_path):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "ml", "evaluate", "--model", str(tmp_path), "--data", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("error: ")
