"""Train, evaluate and cross-validate both models on a VOC dataset folder.

This is what `python -m ml` and the Celery workers call. The classifier
learns from every photo with a verdict, the detector from the photos with
boxes (only when there are any). Metrics: scikit-learn for the classifier,
pycocotools for the detector (`ml.metrics`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ml.classifier import ClassifierConfig, RustClassifier
from ml.dataset import DatasetError, Photo, VocDataset, grouped_folds
from ml.embeddings import EmbeddingCache
from ml.hooks import ProgressFn, StopFn, TrainingHooks
from ml.metrics import COCO_KEYS, classification_metrics, detection_metrics

log = logging.getLogger(__name__)

CLASSIFIER_KEYS = (
    "accuracy",
    "roc_auc",
    "precision_rust",
    "recall_rust",
    "f1_rust",
    "threshold",
    "confusion",
)


def det_samples(photos: Sequence[Photo], negatives: bool = False):
    """The boxed photos as the detector's DetSample list; with `negatives`, also the photos
    verdicted no-rust (no boxes: all background), which the score-map family learns from."""
    from ml.detector import DetSample

    return [
        DetSample(p.path, np.asarray(p.boxes, dtype=np.float32).reshape(-1, 4))
        for p in photos
        if p.boxed or (negatives and p.label == 0)
    ]


def _classifier_metrics(y, prob, threshold) -> dict:
    m = classification_metrics(y, prob, threshold)
    return {k: m[k] for k in CLASSIFIER_KEYS} | {"n": m["n"]}


def train(
    dataset: VocDataset,
    out: str | Path,
    *,
    split: str = "default",
    classifier_config: ClassifierConfig | None = None,
    detector_config=None,
    skip_detector: bool = False,
    weights: str | None = "imagenet",
    cache: EmbeddingCache | None = None,
    progress: bool = True,
    on_progress: ProgressFn | None = None,
    should_stop: StopFn | None = None,
    init_detector: str | Path | None = None,
) -> Path:
    """Train on `split`'s train part, score on its val part, write an artifact to `out`.

    `on_progress(phase, step, total, loss)` and `should_stop()`: see ml.hooks (phases
    "classifier", "detector"); when `should_stop()` answers True training stops at the
    next batch with ml.hooks.TrainingCancelled and nothing is written to `out`.
    `init_detector`: a trained detector folder (an artifact's `detector/`) to start the
    detector from instead of `weights`: a warm start, its config must have the same
    architecture (ml.detector.WarmStartError otherwise, saying what differs).
    """
    from ml.artifacts import commit_artifact, new_staging_dir, write_manifest

    t0 = time.perf_counter()
    train_photos = dataset.subset("train", split)
    val_photos = dataset.subset("val", split)
    if not dataset.labelled(train_photos):
        raise DatasetError(f"{dataset.root}: split {split!r} has no labelled training photos")
    staging = new_staging_dir(out)
    logs = staging / "logs"
    timings: dict[str, float] = {}
    metrics: dict = {}
    hooks = TrainingHooks(on_progress, should_stop)
    try:
        hooks.check("before the classifier")
        clf = RustClassifier(classifier_config, weights=weights)
        clf.fit(train_photos, val_photos, cache=cache, progress=progress, log_dir=logs, hooks=hooks)
        timings["classifier_s"] = round(time.perf_counter() - t0, 2)
        val_l = dataset.labelled(val_photos)
        if val_l and len({p.label for p in val_l}) == 2:
            prob = clf.predict([p.path for p in val_l], [p.sha256 for p in val_l], cache)
            metrics["classifier"] = _classifier_metrics(
                [p.label for p in val_l], prob, clf.threshold
            )
        clf.save(staging / "classifier")

        det = None
        det_config = detector_config
        if not skip_detector and any(p.boxed for p in train_photos):
            from ml.detector import DetectorConfig, train_detector

            det_config = det_config or DetectorConfig()
            det_train = det_samples(train_photos, negatives=det_config.family == "scoremap")
            t1 = time.perf_counter()
            det_val = det_samples(val_photos)
            hooks.check("before the detector")
            det = train_detector(
                det_train,
                det_config,
                val=det_val or None,
                log_dir=logs / "detector",
                weights=weights,
                progress=progress,
                init=Path(init_detector) if init_detector is not None else None,
                hooks=hooks,
            )
            timings["detector_s"] = round(time.perf_counter() - t1, 2)
            if det_val:
                metrics["detector"] = det.evaluate(det_val)
            det.save(staging / "detector")
        timings["total_s"] = round(time.perf_counter() - t0, 2)
        write_manifest(
            staging,
            {
                "dataset": {
                    "path": str(dataset.root),
                    "hash": dataset.dataset_hash,
                    "split": split,
                    "train": [p.id for p in train_photos],
                    "val": [p.id for p in val_photos],
                },
                "classifier": {
                    "config": asdict(clf.config),
                    "threshold": clf.threshold,
                    "info": clf.info,
                },
                "detector": (
                    {"config": det.config.to_dict(), "info": det.info} if det is not None else None
                ),
                "metrics": {"val": metrics},
                "thresholds": {"classifier": clf.threshold},
                "timings": timings,
                "weights": weights or "random",
                "init_detector": str(init_detector) if init_detector is not None else None,
            },
        )
        return commit_artifact(staging, out)
    except BaseException:
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        raise


def evaluate(
    artifact,
    dataset: VocDataset,
    part: str = "test",
    split: str = "default",
    cache: EmbeddingCache | None = None,
    progress: bool = True,
) -> dict:
    """{"classifier": {...}, "detector": {...}} on one part of the dataset."""
    photos = dataset.subset(part, split)
    out: dict = {}
    labelled = dataset.labelled(photos)
    if artifact.classifier is not None and labelled:
        clf = artifact.classifier
        prob = clf.predict(
            [p.path for p in labelled], [p.sha256 for p in labelled], cache, progress
        )
        out["classifier"] = _classifier_metrics([p.label for p in labelled], prob, clf.threshold)
    boxed = [p for p in photos if p.boxed]
    if artifact.detector is not None and boxed:
        preds = artifact.detector.predict([p.path for p in boxed], score_threshold=0.01)
        out["detector"] = detection_metrics(
            [p.boxes for p in boxed], preds, [(p.width, p.height) for p in boxed]
        )
    return out


def summarise(folds: list[dict]) -> dict:
    """Mean and std of each scalar metric over folds; confusion matrices summed."""
    out: dict = {}
    for key in folds[0]:
        vals = [f[key] for f in folds]
        if key == "confusion":
            out[key] = np.sum(np.asarray(vals), axis=0).tolist()
        elif isinstance(vals[0], (int, float)):
            arr = np.asarray(vals, dtype=float)
            out[key] = float(np.nanmean(arr))
            out[f"{key}_std"] = float(np.nanstd(arr))
    return out


def cross_validate_classifier(
    photos: Sequence[Photo],
    folds: int = 5,
    config: ClassifierConfig | None = None,
    weights: str | None = "imagenet",
    cache: EmbeddingCache | None = None,
    progress: bool = True,
    seed: int = 0,
    clf: RustClassifier | None = None,
) -> dict:
    """Grouped, stratified k-fold CV of the classifier; embeddings computed once.

    Returns the summary (mean/std over folds), the per-fold metrics, and the
    pooled out-of-fold metrics.
    """
    photos = [p for p in photos if p.label is not None]
    clf = clf or RustClassifier(config, weights=weights)
    cfg = config or clf.config  # clf lends its backbone; config may differ (threshold, C)
    splits = grouped_folds(photos, folds, seed)  # bad fold counts fail before any work
    paths, shas = [p.path for p in photos], [p.sha256 for p in photos]
    x = clf.embed(paths, shas, cfg.train_views, cache, progress)
    tta = len(cfg.predict_views)
    y = np.asarray([p.label for p in photos])
    groups = [p.group or p.id for p in photos]
    per_fold, oof, thresholds = [], np.zeros(len(photos)), np.zeros(len(photos))
    if progress:
        from tqdm import tqdm

        splits = tqdm(splits, desc="classifier folds", unit="fold", leave=False)
    for tr, te in splits:
        model = RustClassifier(cfg, base=clf._base)
        model._embedders = clf._embedders
        model.fit_embeddings(x[tr], y[tr], [groups[i] for i in tr])
        prob = model.predict_embeddings(x[te, :tta])
        oof[te], thresholds[te] = prob, model.threshold
        per_fold.append(_classifier_metrics(y[te], prob, model.threshold))
    # pooled out-of-fold: each photo judged at its own fold's threshold (shifted to 0.5),
    # AUC on the raw probabilities
    pooled = classification_metrics(y, oof - thresholds + 0.5, 0.5)
    pooled["roc_auc"] = classification_metrics(y, oof)["roc_auc"]
    pooled["threshold"] = float(np.mean(thresholds))
    pooled["errors"] = int(np.sum((oof >= thresholds) != y))
    return {
        "summary": summarise(per_fold),
        "folds": per_fold,
        "oof": oof.tolist(),
        "oof_threshold": thresholds.tolist(),
        "pooled": pooled,
    }


def cross_validate_detector(
    photos: Sequence[Photo],
    folds: int = 5,
    config=None,
    weights: str | None = "imagenet",
    progress: bool = True,
    seed: int = 0,
    extra_train: Sequence = (),
    extra_test: dict[str, Sequence] | None = None,
    on_fold=None,
) -> dict:
    """Grouped k-fold CV of the detector over the boxed photos (COCO metrics per fold).

    The score-map family also learns from the no-rust photos of each training fold.
    `extra_train` (DetSamples, e.g. another source's photos) joins every training fold;
    each fold's model is also scored on every `extra_test` set (name -> DetSamples), so
    one training per fold gives both figures, with their spread over the folds.
    `on_fold(k, detector, test_photos)`, if given, sees each fold's model (a benchmark
    scoring it in other ways).
    """
    from ml.detector import DetectorConfig, train_detector

    config = config or DetectorConfig()
    boxed = [p for p in photos if p.boxed]
    negatives = [p for p in photos if not p.boxed and p.label == 0]
    if config.family != "scoremap":
        negatives = []
    if len(boxed) < folds:
        raise DatasetError(f"{len(boxed)} boxed photos cannot make {folds} detector folds")
    per_fold = []
    extra: dict[str, list[dict]] = {name: [] for name in extra_test or {}}
    neg_folds = grouped_folds(negatives, folds, seed) if len(negatives) >= folds else None
    for k, (tr, te) in enumerate(grouped_folds(boxed, folds, seed)):
        log.info("detector fold %d/%d", k + 1, folds)
        train_neg = [negatives[i] for i in neg_folds[k][0]] if neg_folds else negatives
        det = train_detector(
            det_samples([boxed[i] for i in tr] + train_neg, negatives=True) + list(extra_train),
            config,
            weights=weights,
            progress=progress,
        )
        test = [boxed[i] for i in te]
        preds = det.predict([p.path for p in test], score_threshold=0.01)
        per_fold.append(
            detection_metrics([p.boxes for p in test], preds, [(p.width, p.height) for p in test])
        )
        per_fold[-1]["train_seconds"] = det.info.get("train_seconds")
        if on_fold is not None:
            on_fold(k, det, test)
        for name, samples in (extra_test or {}).items():
            extra[name].append(det.evaluate(list(samples)))
    out = {"summary": summarise(per_fold), "folds": per_fold}
    if extra_test:
        out["extra_test"] = {name: summarise(ms) | {"folds": ms} for name, ms in extra.items()}
    return out


def metrics_json(classifier: dict | None, detector: dict | None) -> dict:
    """The `--json` document: exactly the issue's keys (means for CV)."""
    out: dict = {}
    if classifier is not None:
        out["classifier"] = {k: classifier[k] for k in CLASSIFIER_KEYS if k in classifier}
    if detector is not None:
        out["detector"] = {k: detector[k] for k in COCO_KEYS}
    return out
