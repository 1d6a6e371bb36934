"""The adaptation simulation on synthetic embeddings (no backbone): the curve's shape and
that labelling photos of the new source helps where the base model fails on it."""

from __future__ import annotations

import numpy as np
import pytest

from ml.adaptation import Pool, simulate_adaptation
from ml.classifier import ClassifierConfig

CONFIG = ClassifierConfig(n_aug=0, calibration_folds=3)  # views: photo and mirror


def domain(n: int, shift: float, seed: int, flip: bool = False) -> Pool:
    """Two classes along axis 0; `shift` moves the whole domain along axis 1, and `flip`
    makes axis 2 (a look-alike cue: rust-coloured paint) point the other way."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(0, 1, (n, 2, 8))
    x[:, :, 0] += (2 * y - 1)[:, None] * 1.0
    x[:, :, 2] += ((1 - 2 * y) if flip else (2 * y - 1))[:, None] * 3.0
    x[:, :, 1] += shift
    return Pool(x.astype(np.float32), y, np.array([f"{seed}-{i}" for i in range(n)]))


def test_labelling_the_new_source_closes_the_gap():
    base, pool, test = domain(60, 0, 1), domain(100, 3, 2, flip=True), domain(80, 3, 3, True)
    out = simulate_adaptation(base, pool, test, CONFIG, ks=(0, 10, 40), repeats=2)
    assert out["ks"] == [0, 10, 40]
    assert set(out) == {"ks", "all", "queue", "random"}
    for strategy in ("queue", "random"):
        curve = out[strategy]
        assert set(curve) == {0, 10, 40}
        assert {"roc_auc", "roc_auc_std", "accuracy", "recall_rust"} <= set(curve[0])
        # the seed's cue is backwards on the new source: the start is bad, labels fix it
        assert curve[0]["roc_auc"] < 0.5
        assert curve[40]["roc_auc"] > curve[0]["roc_auc"] + 0.3
    assert out["queue"][0] == out["random"][0]  # both start from the same base model
    assert out["random"][0]["roc_auc_std"] == 0.0
    assert out["all"]["roc_auc"] > 0.9


def test_bad_arguments_are_clear_errors():
    base, pool = domain(20, 0, 1), domain(10, 1, 2)
    with pytest.raises(ValueError, match="k = 40 is more than the 10 pool photos"):
        simulate_adaptation(base, pool, pool, CONFIG, ks=(0, 40))
    with pytest.raises(ValueError, match="unknown strategies"):
        simulate_adaptation(base, pool, pool, CONFIG, ks=(0, 5), strategies=("oracle",))
