"""Hooks of a training call (live progress, stop between batches) and the detector warm start.

Tiny sizes (64 px detector, 48 px classifier, MobileNet 0.25): behaviour, not quality.
"""

from __future__ import annotations

import numpy as np
import pytest

from ml.classifier import ClassifierConfig
from ml.detector import (
    DetectorConfig,
    DetSample,
    RustDetector,
    WarmStartError,
    train_detector,
    warm_start_mismatch,
)
from ml.hooks import TrainingCancelled, TrainingHooks
from tests.ml.conftest import make_photo

TINY = dict(
    backbone="mobilenet_025",
    image_size=64,
    max_level=5,
    epochs=2,
    batch_size=2,
    predict_batch=2,
    fpn_width=16,
    head_width=16,
    head_layers=1,
    warmup_epochs=0,
    augment=False,
)


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> list[DetSample]:
    d = tmp_path_factory.mktemp("hooks")
    box = (10, 8, 42, 30)
    return [
        DetSample(make_photo(d / f"r{i}.jpg", "rust", i, box=box), np.array([box], np.float32))
        for i in range(4)
    ]


@pytest.fixture(scope="module")
def deployed(samples, tmp_path_factory, keras_home) -> tuple[RustDetector, object]:
    """A trained tiny detector saved as an artifact's detector folder (the 'deployed' one)."""
    det = train_detector(samples, DetectorConfig(**TINY), progress=False)
    folder = tmp_path_factory.mktemp("deployed") / "detector"
    det.save(folder)
    return det, folder


def test_progress_per_epoch_with_loss_and_a_stop_between_batches(samples, keras_home):
    seen = []
    hooks = TrainingHooks(on_progress=lambda *a: seen.append(a), should_stop=lambda: False)
    det = train_detector(samples, DetectorConfig(**TINY), progress=False, hooks=hooks)
    assert [(p, e, n) for p, e, n, _ in seen] == [("detector", 1, 2), ("detector", 2, 2)]
    assert all(loss > 0 for *_, loss in seen)
    assert seen[-1][3] == pytest.approx(det.info["final_loss"], rel=1e-5)

    asked = []

    def stop_after_two_asks():
        asked.append(1)
        return len(asked) >= 2

    long = DetectorConfig(**{**TINY, "epochs": 50})
    with pytest.raises(TrainingCancelled, match="detector, epoch batch 2"):
        train_detector(
            samples, long, progress=False, hooks=TrainingHooks(should_stop=stop_after_two_asks)
        )
    assert len(asked) == 2  # stopped at the second batch of 100, not at the end


def test_warm_start_begins_at_the_deployed_weights(samples, deployed, keras_home):
    det, folder = deployed
    assert warm_start_mismatch(DetectorConfig(**TINY), folder) is None
    # 0 epochs: the network as it starts, before any training step
    start = train_detector(
        samples, DetectorConfig(**{**TINY, "epochs": 0}), init=folder, progress=False
    )
    for a, b in zip(start.model.get_weights(), det.model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert start.info["init"] == str(folder)
    # from ImageNet (the backbone) and fresh heads, the start is another network
    cold = train_detector(samples, DetectorConfig(**{**TINY, "epochs": 0}), progress=False)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(cold.model.get_weights(), det.model.get_weights(), strict=True)
    )
    # training on from there moves the weights and predicts as any detector does
    warm = train_detector(
        samples, DetectorConfig(**{**TINY, "epochs": 1}), init=folder, progress=False
    )
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(warm.model.get_weights(), det.model.get_weights(), strict=True)
    )
    assert len(warm.predict([samples[0].image_path])) == 1


def test_warm_start_refuses_another_architecture(samples, deployed, keras_home):
    _, folder = deployed
    other = DetectorConfig(**{**TINY, "head_width": 8, "image_size": 96, "max_level": 5})
    reason = warm_start_mismatch(other, folder)
    assert "head_width 16 (wanted 8)" in reason and "image_size 64 (wanted 96)" in reason
    with pytest.raises(WarmStartError, match="cannot warm-start the detector: .*head_width"):
        train_detector(samples, other, init=folder, progress=False)
    scoremap = DetectorConfig(**{**TINY, "family": "scoremap"})
    assert "family 'retinanet' (wanted 'scoremap')" in warm_start_mismatch(scoremap, folder)
    assert "cannot be read" in warm_start_mismatch(other, folder.parent / "nothing")


def test_train_stopped_mid_detector_writes_no_artifact(tiny_voc, tmp_path, keras_home):
    """ml.training.train: classifier progress per embedding batch, then a stop during the
    detector leaves `out` without an artifact or a staging folder."""
    from ml.dataset import load_dataset
    from ml.training import train

    phases = []

    def on_progress(phase, step, total, loss):
        phases.append(phase)

    root = tiny_voc.root / "ImageSets" / "Main"  # every boxed photo in train
    boxed = [p.id for p in tiny_voc.photos if p.boxed]
    rest = [p.id for p in tiny_voc.photos if not p.boxed]
    (root / "train.txt").write_text("\n".join(boxed + rest[:8]) + "\n")
    (root / "val.txt").write_text("\n".join(rest[8:]) + "\n")
    (root / "test.txt").write_text("")
    out = tmp_path / "runs" / "art"
    with pytest.raises(TrainingCancelled):
        train(
            load_dataset(tiny_voc.root),
            out,
            classifier_config=ClassifierConfig(
                backbone="mobilenet_025", image_sizes=(48,), n_aug=1
            ),
            detector_config=DetectorConfig(**{**TINY, "epochs": 50}),
            progress=False,
            on_progress=on_progress,
            should_stop=lambda: "detector" in phases,
        )
    assert phases[0] == "classifier" and phases[-1] == "detector"
    assert not list(out.parent.iterdir())  # neither the artifact nor its staging folder
