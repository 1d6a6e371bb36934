"""`python -m ml train | evaluate | predict | cv` with both models at tiny sizes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ml.cli import main

TINY_CLS = ["--backbone", "mobilenet_025", "--image-size", "48", "--n-aug", "1"]
TINY_DET = [
    f"--det-set={kv}"
    for kv in (
        "image_size=64",
        "max_level=5",
        "epochs=1",
        "batch_size=4",
        "predict_batch=2",
        "fpn_width=16",
        "head_width=16",
        "head_layers=1",
    )
]


@pytest.fixture
def voc_with_boxed_train(tiny_voc):
    """The tiny dataset with every boxed photo in train and one in val too (its copy)."""
    root = tiny_voc.root / "ImageSets" / "Main"
    boxed = [p.id for p in tiny_voc.photos if p.boxed]
    rest = [p.id for p in tiny_voc.photos if not p.boxed]
    (root / "train.txt").write_text("\n".join(boxed + rest[:8]) + "\n")
    (root / "val.txt").write_text("\n".join(rest[8:]) + "\n")
    (root / "test.txt").write_text("")
    return tiny_voc


def test_train_evaluate_predict_with_classifier_and_detector(
    voc_with_boxed_train, tmp_path, keras_home, capsys
):
    from ml.artifacts import load_artifact

    data, art = str(voc_with_boxed_train.root), tmp_path / "art"
    cache = ["--cache", str(tmp_path / "emb")]
    assert (
        main(["-q", "train", "--data", data, "--out", str(art), *TINY_CLS, *TINY_DET, *cache]) == 0
    )
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["detector"]["config"]["image_size"] == 64
    assert manifest["detector"]["info"]["train_photos"] == 3
    assert (art / "detector" / "detector.keras").is_file()
    assert list((art / "logs" / "detector").rglob("events.out.tfevents*"))

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
    assert set(result) == {"classifier", "detector"}
    assert set(result["detector"]) == {"AP", "AP50", "AP75", "AR1", "AR10", "AR100"}
    assert all(0 <= v <= 1 for v in result["detector"].values())
    assert "AP50" in capsys.readouterr().out

    boxed = next(p for p in voc_with_boxed_train.photos if p.boxed)
    assert (
        main(
            [
                "-q",
                "predict",
                "--model",
                str(art),
                str(boxed.path),
                "--score-threshold",
                "0",
                "--json",
                str(tmp_path / "p.json"),
            ]
        )
        == 0
    )
    pred = json.loads((tmp_path / "p.json").read_text())["photos"][0]
    for b in pred["boxes"]:  # original pixels of the 64x48 photo
        assert 0 <= b["xmin"] < b["xmax"] <= 64 and 0 <= b["ymin"] < b["ymax"] <= 48

    # the loaded detector predicts what the saved one did
    a, b = load_artifact(art), load_artifact(art)
    pa, pb = a.detector.predict([boxed.path]), b.detector.predict([boxed.path])
    np.testing.assert_array_equal(pa[0][0], pb[0][0])
    np.testing.assert_array_equal(pa[0][1], pb[0][1])


def test_train_a_score_map_detector_by_config(voc_with_boxed_train, tmp_path, keras_home):
    """`--det-set family=scoremap`: it also learns from the no-rust photos of the train split,
    and the loaded artifact gives boxes with a heat map."""
    from ml.artifacts import load_artifact

    data, art = str(voc_with_boxed_train.root), tmp_path / "art"
    argv = ["-q", "train", "--data", data, "--out", str(art), *TINY_CLS, *TINY_DET]
    argv += ["--det-set=family=scoremap", "--det-set=map_width=8", "--cache", str(tmp_path)]
    assert main(argv) == 0
    info = json.loads((art / "manifest.json").read_text())["detector"]["info"]
    train = set((voc_with_boxed_train.root / "ImageSets/Main/train.txt").read_text().split())
    negatives = [p for p in voc_with_boxed_train.photos if p.id in train and p.label == 0]
    assert info["family"] == "scoremap" and len(negatives) >= 4
    assert info["train_photos"] == 3 + len(negatives) and info["train_boxes"] == 3
    boxed = next(p for p in voc_with_boxed_train.photos if p.boxed)
    (result,) = load_artifact(art).detector.predict([boxed.path])
    assert result.heatmap.shape == (6, 8)  # 64x48 photo on a 64 px canvas, 8 px cells
    assert np.all((result.heatmap >= 0) & (result.heatmap <= 1))
    out = tmp_path / "p.json"
    assert main(["-q", "predict", "--model", str(art), str(boxed.path), "--json", str(out)]) == 0
    heatmap = json.loads(out.read_text())["photos"][0]["heatmap"]
    np.testing.assert_allclose(heatmap, result.heatmap, atol=5e-4)


@pytest.mark.slow  # trains three detectors: minutes on a busy 2-core machine
def test_cv_covers_both_models(tiny_voc, tmp_path, keras_home):
    assert (
        main(
            [
                "-q",
                "cv",
                "--data",
                str(tiny_voc.root),
                "--folds",
                "3",
                *TINY_CLS,
                *TINY_DET,
                "--det-set=epochs=1",
                "--cache",
                str(tmp_path / "emb"),
                "--json",
                str(tmp_path / "cv.json"),
            ]
        )
        == 0
    )
    cv = json.loads((tmp_path / "cv.json").read_text())
    assert set(cv) == {"classifier", "detector"}
    assert 0 <= cv["detector"]["AP50"] <= 1


def test_bad_detector_option_is_an_error_line(tiny_voc, tmp_path, capsys):
    assert (
        main(
            [
                "-q",
                "train",
                "--data",
                str(tiny_voc.root),
                "--out",
                str(tmp_path / "a"),
                "--det-set=no_such_field=1",
            ]
        )
        == 2
    )
    assert "unknown detector config keys: no_such_field" in capsys.readouterr().err
    assert not (tmp_path / "a").exists()
