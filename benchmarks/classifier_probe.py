"""Fast classifier probe (issue 11): many head variants on embeddings computed once.

The embeddings of the seed photos, the VT test tiles and (for the seed + VT rows) a
sample of clean VT train tiles are computed once per (backbone, view) and cached
(`ml.embeddings.EmbeddingCache`, in the work folder that benchmarks/external.py uses, so
both share them). Each variant is then a `ClassifierConfig` (and a list of backbones whose
embeddings are concatenated: a feature-level ensemble) fitted by
`RustClassifier.fit_embeddings`, exactly as benchmarks/external.py fits it, on the
same grouped folds: seed CV accuracy / ROC-AUC / rust recall at the model's own
threshold, and the VT test tile ROC-AUC of the same seed-only fold models. A variant
costs seconds once its views are cached.

Model selection follows benchmarks/external.py's protocol, rule 2: a change becomes the
default only if the seed-CV accuracy, ROC-AUC and rust recall stay at or above the goals
(0.97 / 0.99 / 0.98) or at the default's figures, AND the seed-only VT-tile ROC-AUC rises.
The VT test tiles never pick anything else (no thresholds, no training). The "seed + VT
clean" rows (idea e) train on VT train tiles and are reported apart: rule 2 does not
apply to them.

    .venv/bin/python benchmarks/classifier_probe.py                       # all variants
    .venv/bin/python benchmarks/classifier_probe.py --variants default,tiles2
    .venv/bin/python benchmarks/classifier_probe.py --embed-only          # fill the cache
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.external import (  # noqa: E402
    GOALS,
    balanced_sample,
    cache_dir,
    seed_photos,
    vt_tiles,
)
from benchmarks.quality import table  # noqa: E402
from benchmarks.speed import ensure_keras_home  # noqa: E402

log = logging.getLogger("classifier_probe")

DEFAULT_BACKBONE = "mobilenet_v2_035"
ENSEMBLE = (DEFAULT_BACKBONE, "mobilenet_025")  # the two backbones with offline weights

# name -> (idea, backbones, ClassifierConfig overrides, trained on); "default" is the baseline
VARIANTS: dict[str, tuple[str, tuple[str, ...], dict, str]] = {
    "default": ("baseline", (DEFAULT_BACKBONE,), {}, "seed"),
    "recall98": ("d", (DEFAULT_BACKBONE,), {"target_recall": 0.98}, "seed"),
    "recall99": ("d", (DEFAULT_BACKBONE,), {"target_recall": 0.99}, "seed"),
    "C0.003": ("d", (DEFAULT_BACKBONE,), {"C": 0.003}, "seed"),
    "C0.03": ("d", (DEFAULT_BACKBONE,), {"C": 0.03}, "seed"),
    "hue": ("b", (DEFAULT_BACKBONE,), {"hue_jitter": True}, "seed"),
    "mnv1": ("c", ("mobilenet_025",), {}, "seed"),
    "ensemble": ("c", ENSEMBLE, {}, "seed"),
    "tiles2": ("a", (DEFAULT_BACKBONE,), {"tile_grids": (2,)}, "seed"),
    "tiles2-neg": ("a", (DEFAULT_BACKBONE,), {"tile_grids": (2,), "tile_positives": 0}, "seed"),
    "tiles2-pos2": ("a", (DEFAULT_BACKBONE,), {"tile_grids": (2,), "tile_positives": 2}, "seed"),
    "tiles3": ("a", (DEFAULT_BACKBONE,), {"tile_grids": (3,)}, "seed"),
    "tiles23": ("a", (DEFAULT_BACKBONE,), {"tile_grids": (2, 3)}, "seed"),
    "tiles2+hue": ("a+b", (DEFAULT_BACKBONE,), {"tile_grids": (2,), "hue_jitter": True}, "seed"),
    "tiles2+ens": ("a+c", ENSEMBLE, {"tile_grids": (2,)}, "seed"),
    "size224": ("a", (DEFAULT_BACKBONE,), {"image_sizes": (224,)}, "seed"),
    "size224+448": ("a", (DEFAULT_BACKBONE,), {"image_sizes": (224, 448)}, "seed"),
    "tiles23-C0.003": ("a+d", (DEFAULT_BACKBONE,), {"tile_grids": (2, 3), "C": 0.003}, "seed"),
    "size224+448-C0.003": (
        "a+d",
        (DEFAULT_BACKBONE,),
        {"image_sizes": (224, 448), "C": 0.003},
        "seed",
    ),
    "default+vtclean": ("e", (DEFAULT_BACKBONE,), {}, "seed+vt clean"),
    "tiles2+vtclean": ("a+e", (DEFAULT_BACKBONE,), {"tile_grids": (2,)}, "seed+vt clean"),
}
KEYS = ("accuracy", "roc_auc", "recall_rust", "threshold", "vt_roc_auc", "vt_accuracy")


class Features:
    """Cached (N, V, D) embeddings per backbone and input sizes (a variant's), concatenated
    over backbones."""

    def __init__(self, cache):
        self.cache = cache
        self._clf = {}
        self.seconds = 0.0

    def get(self, backbones, photos, views, config) -> np.ndarray:
        from ml.classifier import ClassifierConfig, RustClassifier

        t0 = time.perf_counter()
        parts = []
        for b in backbones:
            key = (b, config.image_sizes, config.pooling)
            if key not in self._clf:
                self._clf[key] = RustClassifier(
                    ClassifierConfig(backbone=b, image_sizes=key[1], pooling=key[2])
                )
            clf = self._clf[key]
            paths, shas = [p.path for p in photos], [p.sha256 for p in photos]
            parts.append(clf.embed(paths, shas, views, self.cache, progress=True))
        self.seconds += time.perf_counter() - t0
        return np.concatenate(parts, axis=-1)


def evaluate(name: str, data: dict, feats: Features, args) -> dict:
    """Seed grouped CV (folds x repeats) of one variant, and the VT test tiles scored by the
    same seed(-only or + VT clean) fold models."""
    from ml.classifier import ClassifierConfig, RustClassifier
    from ml.dataset import grouped_folds
    from ml.metrics import classification_metrics
    from ml.training import summarise

    _, backbones, overrides, trained_on = VARIANTS[name]
    config = ClassifierConfig(**overrides)
    seed, vt_test = data["seed"], data["vt_test"]
    x = feats.get(backbones, seed, config.train_views, config)
    xv = feats.get(backbones, vt_test, config.predict_views, config)
    y, yv = np.array([p.label for p in seed]), np.array([p.label for p in vt_test])
    groups = np.array([p.group or p.id for p in seed])
    extra = None
    if trained_on != "seed":
        clean = data["vt_clean"]
        extra = (
            feats.get(backbones, clean, config.train_views, config),
            np.zeros(len(clean), dtype=int),
            np.array([p.group for p in clean]),
        )
    if args.embed_only:
        return {}
    t0 = time.perf_counter()
    tta = len(config.predict_views)
    folds = []
    for repeat in range(args.repeats):
        for tr, te in grouped_folds(seed, args.folds, repeat):
            xt, yt, gt = x[tr], y[tr], groups[tr]
            if extra is not None:
                xt, yt, gt = (
                    np.concatenate([a, b]) for a, b in zip((xt, yt, gt), extra, strict=True)
                )
            model = RustClassifier(config, weights=None).fit_embeddings(xt, yt, gt.tolist())
            m = classification_metrics(
                y[te], model.predict_embeddings(x[te, :tta]), model.threshold
            )
            mv = classification_metrics(yv, model.predict_embeddings(xv), model.threshold)
            m |= {"vt_roc_auc": mv["roc_auc"], "vt_accuracy": mv["accuracy"]}
            folds.append(m)
    out = summarise(folds)
    out["fit_s"] = time.perf_counter() - t0
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated names")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--tile", type=int, default=256, help="VT tile size (as external.py)")
    p.add_argument("--vt-clean", type=int, default=100, help="clean VT train tiles for (e)")
    p.add_argument("--cache", help="work folder (default: external.py's)")
    p.add_argument("--embed-only", action="store_true", help="fill the cache, fit nothing")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.WARNING)
    names = args.variants.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    ensure_keras_home()
    from ml.embeddings import EmbeddingCache

    t0 = time.perf_counter()
    work = cache_dir(args)
    vt_train = vt_tiles("train", work, args.tile)
    data = {
        "seed": seed_photos(work).labelled(),
        "vt_test": vt_tiles("test", work, args.tile),
        # clean tiles only (hard negatives: paint, concrete, clean steel); 2 * n // 2 drawn
        "vt_clean": [q for q in balanced_sample(vt_train, 2 * args.vt_clean) if q.label == 0],
    }
    feats = Features(EmbeddingCache(work / "emb"))
    rows = []
    for name in names:
        m = evaluate(name, data, feats, args)
        log.info("%s: %s", name, {k: round(v, 4) for k, v in m.items() if isinstance(v, float)})
        idea, backbones, overrides, trained_on = VARIANTS[name]
        label = f"{name} ({idea}; {'+'.join(backbones)}; {overrides or 'defaults'}; {trained_on})"
        rows.append((label, m))
    if args.embed_only:
        print(f"embeddings cached in {feats.seconds:.0f} s")
        return 0
    goal = GOALS["classifier seed CV"] | {"vt_roc_auc": 0.95}
    rows.append(("goal", goal))
    seed, vt = data["seed"], data["vt_test"]
    title = (
        f"classifier probe: {args.folds}-fold grouped seed CV x {args.repeats} repeats "
        f"({len(seed)} photos); vt_* = the same fold models on the {len(vt)} VT test tiles "
        f"({args.tile} px); wall {time.perf_counter() - t0:.0f} s (embedding "
        f"{feats.seconds:.0f} s, fits {sum(m.get('fit_s', 0) for _, m in rows):.0f} s)"
    )
    print(table(title, KEYS, rows), flush=True)
    print(
        "command: .venv/bin/python benchmarks/classifier_probe.py " + " ".join(argv or sys.argv[1:])
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
