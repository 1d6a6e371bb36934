"""Quality of the rust models on the seed photos, beside the article and a baseline.

Builds the VOC dataset from ../shared/data/corrosion-seed (155 classification
files = 149 distinct photos; 45 boxed photos), then reports, in one run:

classifier
  - 5-fold cross-validation over all 149 photos, grouped (byte-identical and
    perceptual-hash near-duplicates in one fold), stratified, for
    * the seed README baseline, measured here on the same folds: frozen
      MobileNetV2-0.35 at 224 px, global average pooling, scikit-learn
      logistic regression, threshold 0.5;
    * ours: ml.classifier defaults (see ClassifierConfig);
  - the article's split (train rust.0-69/norust.0-59, val rust.70-75/
    norust.60-65, test rust.76-81/norust.63-71: 15 photos), both models.
detector (ml.detector defaults, unless --det-epochs)
  - the article's split: detection/train (39 photos) -> detection/test (6);
  - k-fold grouped cross-validation over the 45 boxed photos.

    .venv/bin/python benchmarks/quality.py                   # all (detector CV is long)
    .venv/bin/python benchmarks/quality.py --skip-detector   # classifier only, minutes
    .venv/bin/python benchmarks/quality.py --det-epochs 20 --det-folds 3
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.speed import ensure_keras_home  # noqa: E402

SEED = ROOT.parent / "shared" / "data" / "corrosion-seed"
ARTICLE_CLS = {"accuracy": 0.861, "roc_auc": 0.85, "recall_rust": 0.83}
README_BASELINE = {"accuracy": 0.935, "roc_auc": 0.988, "recall_rust": 0.964}
ARTICLE_DET = {"AP": 0.068, "AP50": 0.183, "AP75": 0.028, "AR1": 0.075, "AR10": 0.169}
TARGET_CLS = {"accuracy": 0.97, "roc_auc": 0.99, "recall_rust": 0.98}
TARGET_DET = {"AP": 0.20, "AP50": 0.45}
CLS_KEYS = ("accuracy", "roc_auc", "precision_rust", "recall_rust", "f1_rust", "threshold")
DET_KEYS = ("AP", "AP50", "AP75", "AR1", "AR10", "AR100")

log = logging.getLogger("quality")


def baseline_cv(photos, folds, seed, cache) -> tuple[dict, list[dict]]:
    """The seed README's baseline on the same grouped folds."""
    from sklearn.linear_model import LogisticRegression

    from ml.dataset import grouped_folds
    from ml.embeddings import Embedder, embed_photos
    from ml.metrics import classification_metrics
    from ml.training import summarise

    emb = Embedder("mobilenet_v2_035", 224, pooling="avg")
    x = embed_photos(emb, [p.path for p in photos], [p.sha256 for p in photos], ["full"], cache)[
        :, 0
    ]
    y = np.array([p.label for p in photos])
    per_fold = []
    for tr, te in grouped_folds(photos, folds, seed):
        lr = LogisticRegression(max_iter=5000).fit(x[tr], y[tr])
        per_fold.append(classification_metrics(y[te], lr.predict_proba(x[te])[:, 1], 0.5))
    return summarise(per_fold), per_fold


def baseline_split(train, test, cache) -> dict:
    from sklearn.linear_model import LogisticRegression

    from ml.embeddings import Embedder, embed_photos
    from ml.metrics import classification_metrics

    emb = Embedder("mobilenet_v2_035", 224, pooling="avg")

    def xy(ps):
        x = embed_photos(emb, [p.path for p in ps], [p.sha256 for p in ps], ["full"], cache)
        return x[:, 0], np.array([p.label for p in ps])

    (xt, yt), (xs, ys) = xy(train), xy(test)
    lr = LogisticRegression(max_iter=5000).fit(xt, yt)
    return classification_metrics(ys, lr.predict_proba(xs)[:, 1], 0.5)


def fmt(m: dict, k: str) -> str:
    if k not in m:
        return "–"
    s = f"{m[k]:.3f}"
    return s + (f" ± {m[k + '_std']:.3f}" if k + "_std" in m else "")


def table(title: str, keys, rows: list[tuple[str, dict]]) -> str:
    head = ["", *keys]
    body = [[name, *[fmt(m, k) for k in keys]] for name, m in rows]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = [f"\n{title}\n"]
    for r in [head, ["-" * w for w in widths], *body]:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument(
        "--data",
        help="a VOC folder made by `python -m ml from-folders` "
        "(default: build one from the seed photos in a temporary folder)",
    )
    p.add_argument("--folds", type=int, default=5)
    p.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="classifier CV repeats with reshuffled folds (seeds 0..N-1)",
    )
    p.add_argument("--cache", help="embedding cache folder (default: a temporary one)")
    p.add_argument(
        "--also-target-recall",
        type=float,
        nargs="*",
        default=[0.99],
        help="also report these operating points (ClassifierConfig.target_recall)",
    )
    p.add_argument("--skip-detector", action="store_true")
    p.add_argument("--det-epochs", type=int, help="detector epochs (default: DetectorConfig)")
    p.add_argument("--det-folds", type=int, default=5, help="0: article split only")
    p.add_argument("--json", help="write all figures here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    ensure_keras_home()

    from ml.classifier import ClassifierConfig, RustClassifier
    from ml.dataset import from_folders, load_dataset
    from ml.embeddings import EmbeddingCache
    from ml.metrics import classification_metrics
    from ml.training import cross_validate_classifier, summarise

    tmp = Path(tempfile.mkdtemp(prefix="quality_"))
    ds = load_dataset(args.data) if args.data else from_folders(SEED, tmp / "voc")
    cache = EmbeddingCache(args.cache or tmp / "emb")
    photos = ds.labelled()
    config = ClassifierConfig()
    report: dict = {"photos": len(photos), "config": config.__dict__, "folds": args.folds}
    out: list[str] = []

    # ---------------------------------------------------------------- classifier CV
    t0 = time.perf_counter()
    base_runs: list[dict] = []
    recalls = [
        config.target_recall,
        *[r for r in args.also_target_recall if r != config.target_recall],
    ]
    ours_runs: dict[float, list[dict]] = {r: [] for r in recalls}
    pooled: dict[float, list[dict]] = {r: [] for r in recalls}
    clf = RustClassifier(config)
    for seed in range(args.repeats):
        base_runs += baseline_cv(photos, args.folds, seed, cache)[1]
        for r in recalls:
            cfg = ClassifierConfig(**{**config.__dict__, "target_recall": r})
            cv = cross_validate_classifier(
                photos, args.folds, cfg, cache=cache, progress=False, seed=seed, clf=clf
            )
            ours_runs[r] += cv["folds"]
            pooled[r].append(cv["pooled"])
    base = summarise(base_runs)
    ours = {r: summarise(v) for r, v in ours_runs.items()}
    report["classifier_cv"] = {
        "baseline": base,
        "ours_by_target_recall": ours,
        "ours_pooled_per_repeat": pooled,
    }
    report["classifier_cv_seconds"] = round(time.perf_counter() - t0, 1)
    out.append(
        table(
            f"classifier, {args.folds}-fold grouped CV over {len(photos)} photos "
            f"(mean ± std over {args.folds}x{args.repeats} folds)",
            CLS_KEYS,
            [
                ("article (VGG16, its own 15-photo test)", ARTICLE_CLS),
                ("seed README baseline (as printed there)", README_BASELINE),
                ("seed README baseline, measured in this run", base),
                *[
                    (
                        f"ours, target_recall {r}"
                        + (" (default)" if r == config.target_recall else ""),
                        ours[r],
                    )
                    for r in recalls
                ],
                ("target (issue 4)", TARGET_CLS),
            ],
        )
    )
    for r in recalls:
        out.append(
            f"ours, target_recall {r}, pooled out-of-fold per repeat: "
            + "; ".join(
                f"acc {m['accuracy']:.3f} AUC {m['roc_auc']:.3f} recall {m['recall_rust']:.3f} "
                f"({m['errors']} wrong, confusion {m['confusion']})"
                for m in pooled[r]
            )
        )

    # ---------------------------------------------------------------- article split
    if "article" in ds.splits:
        tr, va, te = (ds.subset(s, "article") for s in ("train", "val", "test"))
        model = RustClassifier(config, base=clf._base)
        model.fit(tr, va, cache=cache)
        prob = model.predict([p.path for p in te], [p.sha256 for p in te], cache)
        ours_art = classification_metrics([p.label for p in te], prob, model.threshold)
        base_art = baseline_split(tr + va, te, cache)
        report["classifier_article"] = {
            "baseline": base_art,
            "ours": ours_art,
            "test_photos": [p.id for p in te],
        }
        out.append(
            table(
                f"classifier, the article's split ({len(te)} test photos)",
                CLS_KEYS,
                [
                    ("article (VGG16)", ARTICLE_CLS),
                    ("seed README baseline, measured in this run", base_art),
                    ("ours", ours_art),
                ],
            )
        )

    # ---------------------------------------------------------------- detector
    if not args.skip_detector:
        from ml.detector import DetectorConfig
        from ml.training import cross_validate_detector, det_samples

        kw = {"epochs": args.det_epochs} if args.det_epochs else {}
        dcfg = DetectorConfig(**kw)
        boxed = [q for q in ds.photos if q.boxed]
        test = [q for q in boxed if any("detection/test" in s for s in q.sources)]
        train = [q for q in boxed if q not in test]
        from ml.detector import train_detector
        from ml.metrics import detection_metrics

        t1 = time.perf_counter()
        det = train_detector(det_samples(train), dcfg, progress=False)
        preds = det.predict([q.path for q in test], score_threshold=0.01)
        det_art = detection_metrics([q.boxes for q in test], preds)
        det_art["train_s"] = round(time.perf_counter() - t1, 1)
        rows = [
            ("article (SSD MobileNet v1)", ARTICLE_DET),
            (f"ours, article split ({len(train)} -> {len(test)} photos)", det_art),
        ]
        report["detector_article"] = det_art
        if args.det_folds:
            det_cv = cross_validate_detector(boxed, args.det_folds, dcfg, progress=False)
            report["detector_cv"] = det_cv
            rows.append(
                (f"ours, {args.det_folds}-fold grouped CV ({len(boxed)} photos)", det_cv["summary"])
            )
        rows.append(("target (issue 4)", TARGET_DET))
        out.append(
            table(
                f"detector (config: {dcfg.image_size} px, {dcfg.epochs} epochs, {dcfg.backbone})",
                DET_KEYS,
                rows,
            )
        )

    print("\n".join(out))
    print("\ncommand: .venv/bin/python benchmarks/quality.py " + " ".join(argv or sys.argv[1:]))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
