"""Active-learning scores, batch selection, and metric sanity."""

from __future__ import annotations

import numpy as np
import pytest

from ml.active import (
    detector_uncertainty,
    entropy,
    k_center_greedy,
    margin,
    priority,
    select_batch,
    typicality,
    uncertainty_scores,
)
from ml.classifier import threshold_for_recall
from ml.metrics import classification_metrics, detection_metrics


def test_classifier_uncertainty_peaks_at_the_threshold():
    p = np.array([0.0, 0.1, 0.5, 0.9, 1.0])
    assert entropy(p)[2] == pytest.approx(1.0) and entropy(p)[0] < 1e-5
    assert np.argmax(margin(p, 0.5)) == 2
    m = margin([0.3, 0.6], threshold=0.3)
    assert m[0] == pytest.approx(1.0) and 0 < m[1] < 1


def test_detector_uncertainty_and_disagreement():
    assert detector_uncertainty([]) == 0.0
    assert detector_uncertainty([0.99, 0.01]) < 0.1
    assert detector_uncertainty([0.9, 0.5]) == pytest.approx(1.0)
    s = uncertainty_scores([0.95, 0.95], box_scores=[[0.9], []])
    assert s["disagreement"][1] > s["disagreement"][0]
    assert s["score"][1] > s["score"][0]


def test_batch_selection_skips_near_duplicates():
    rng = np.random.default_rng(0)
    centre = rng.normal(size=16)
    dupes = centre + rng.normal(scale=0.01, size=(10, 16))  # ten frames of one plate
    others = rng.normal(size=(5, 16))
    emb = np.vstack([dupes, others])
    scores = np.r_[np.full(10, 0.9), np.full(5, 0.6)]
    picked = select_batch(scores, emb, k=4)
    assert sum(i < 10 for i in picked) == 1  # one of the duplicates, not four
    assert len(set(picked)) == 4
    # photos like an already-labelled one are not picked first
    first = k_center_greedy(emb, 1, labelled=others[:1])
    assert first[0] != 10


def test_typicality_is_the_mean_cosine_similarity_to_the_training_photos():
    rng = np.random.default_rng(2)
    train = rng.normal(loc=1.0, size=(50, 8))
    unit = train / np.linalg.norm(train, axis=1, keepdims=True)
    centre = unit.mean(axis=0)
    photos = np.vstack([train[:3], -train[:1], np.zeros((1, 8))])
    t = typicality(photos, centre)
    # x . mean(u) / |mean(u)| = mean(cos(x, u)) / |mean(u)|: the same order, scaled
    cos = (photos[:3] / np.linalg.norm(photos[:3], axis=1, keepdims=True)) @ unit.T
    np.testing.assert_allclose(t[:3], cos.mean(axis=1) / np.linalg.norm(centre), rtol=1e-5)
    assert t[3] == 0.0 and t[4] == 0.0  # opposite, and no direction at all
    assert typicality(photos, None) is None
    with pytest.raises(ValueError, match="dimensions"):
        typicality(photos, centre[:4])


def test_typicality_weights_the_queue_score():
    prob = [0.5, 0.5, 0.5, 0.9]
    plain = priority(prob)["score"]
    s = priority(prob, typicality=[1.0, 0.5, np.nan, 1.0])
    assert s["score"][0] == pytest.approx(plain[0])
    assert s["score"][1] == pytest.approx(plain[1] * 0.5**3)  # an uncertain outlier waits
    assert s["score"][2] == pytest.approx(plain[2])  # unknown: not weighted
    assert s["score"][1] < s["score"][3] < s["score"][0]
    np.testing.assert_allclose(s["typicality"], [1.0, 0.5, 1.0, 1.0])
    # the same with the detector's parts, and through uncertainty_scores
    both = uncertainty_scores([0.5, 0.5], box_scores=[[0.5], [0.5]], typicality=[1.0, 0.2])
    assert both["score"][1] == pytest.approx(both["score"][0] * 0.2**3)


def test_threshold_keeps_the_target_recall():
    y = np.r_[np.ones(100), np.zeros(100)]
    rng = np.random.default_rng(1)
    prob = np.r_[rng.uniform(0.2, 1.0, 100), rng.uniform(0.0, 0.6, 100)]
    t = threshold_for_recall(y, prob, 0.97)
    assert (prob[y == 1] >= t).mean() >= 0.97
    assert t <= 0.5
    assert threshold_for_recall([0, 0], [0.1, 0.2], 0.97) == 0.5


def test_perfect_predictions_score_one():
    gt = [np.array([[10, 10, 50, 40], [60, 5, 90, 30]], float), np.array([[0, 0, 20, 20]], float)]
    preds = [(g, np.ones(len(g))) for g in gt]
    m = detection_metrics(gt, preds, [(100, 60), (30, 30)])
    assert m["AP"] == pytest.approx(1.0) and m["AP50"] == pytest.approx(1.0)
    assert m["AR100"] == pytest.approx(1.0)
    shifted = [(g + 15, np.ones(len(g))) for g in gt]
    assert detection_metrics(gt, shifted)["AP"] < 0.5
    c = classification_metrics([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert (c["accuracy"], c["roc_auc"], c["recall_rust"]) == (1.0, 1.0, 1.0)
    assert c["confusion"] == [[2, 0], [0, 2]]
