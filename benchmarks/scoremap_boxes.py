"""Box-extraction settings of a trained score-map detector, chosen on photos it never saw.

Loads a score-map artifact (benchmarks/external.py keeps the seed + VT one under its work
folder), computes its maps once for the VT train photos outside its training sample (the
validation photos, all 246 by default: 40 proved too few to pick on) and for VT test, and
keeps them in `<model>.maps.npz` beside it (a rerun costs only the box extraction); then
scores the SETTINGS (box thresholds, min_region, the region split of
ml.detector.scoremap.hot_cores, box scores) on the validation photos; only the default
before the split, the default and the validation winner (AP50) are scored on VT test
(protocol rule 3 of benchmarks/external.py: test figures never pick), and with
`--seed-folds` on seed CV fold models (rule 1). Beside COCO AP: the mask figures of
ml.metrics.mask_metrics (boxes scoring >= 0.3: share of corrosion covered, share of their
union's area on corrosion) and "box on rust", the mean share of corrosion inside each such
box (nested core boxes do not change the union, they do change this); and the ceilings of
the data: a perfect map through the same extraction, the full-resolution mask's regions.

    .venv/bin/python benchmarks/scoremap_boxes.py \
        /tmp/rustwatch-external/detector-scoremap-seed-vt --seed-folds 3
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.quality import table  # noqa: E402
from benchmarks.speed import ensure_keras_home  # noqa: E402

VT = ROOT.parent / "shared" / "data" / "corrosion-vt"
# every row spells out the split it was measured with, whatever the default is now
NONE = {"box_split": "none", "split_min_depth": 0.0}
WS = {"box_split": "watershed", "split_min_depth": 0.0}
T39 = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
T19 = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
BEFORE = "no split (the default before)"
SETTINGS = {
    "default": {},
    BEFORE: NONE,
    "no split, 0.5..0.9": {**NONE, "box_thresholds": (0.5, 0.6, 0.7, 0.8, 0.9)},
    "no split, 0.3..0.9": {**NONE, "box_thresholds": T39},
    "no split, 0.1..0.9": {**NONE, "box_thresholds": T19},
    "no split, 0.3..0.9, min_region 0.0002": {**NONE, "box_thresholds": T39, "min_region": 2e-4},
    "no split, max score": {**NONE, "box_score": "max"},
    **{f"watershed, distance {d}": {**WS, "split_min_distance": d} for d in (1, 2, 3, 5, 8, 12)},
    **{
        f"watershed, distance {d}, depth {h}": {**WS, "split_min_distance": d, "split_min_depth": h}
        for d, h in ((5, 0.05), (1, 0.05), (1, 0.1), (2, 0.1), (1, 0.2))
    },
    "watershed, distance 2, depth 0.1, max score": {
        **WS,
        "split_min_depth": 0.1,
        "box_score": "max",
    },
    "watershed, distance 2, depth 0.1, 0.3..0.9": {
        **WS,
        "split_min_depth": 0.1,
        "box_thresholds": T39,
    },
    "watershed, distance 2, max score": {**WS, "box_score": "max"},
    "watershed, distance 2, 0.3..0.9": {**WS, "box_thresholds": T39},
    "watershed, distance 2, 0.1..0.9": {**WS, "box_thresholds": T19},
    "watershed, distance 2, min_region 0.0002": {**WS, "min_region": 2e-4},
}
BOX_KEYS = (
    "box_thresholds",
    "min_region",
    "box_split",
    "split_min_distance",
    "split_min_depth",
    "box_score",
)
KEYS = ("AP", "AP50", "AP75", "AR100", "boxes", "covered", "on_rust", "box_on_rust")


def box_on_rust(masks, preds, min_score: float = 0.3) -> float:
    """Mean share of corrosion pixels inside each box scoring >= min_score."""
    shares = []
    for mask, (boxes, scores) in zip(masks, preds, strict=True):
        rust = np.asarray(mask) > 0
        for (x0, y0, x1, y1), s in zip(boxes, scores, strict=True):
            if s >= min_score:
                inside = rust[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))]
                if inside.size:
                    shares.append(inside.mean())
    return float(np.mean(shares)) if shares else 0.0


def seed_cv(folds: int, config, model_dir: Path, names) -> list[tuple[str, dict]]:
    """Seed CV fold models (ml.training.cross_validate_detector, as benchmarks/external.py
    runs it, at the model's config) with each of `names`' box settings, from the same maps
    of each fold's test photos (trained once, kept in `<model>.seed-cv-maps.npz`)."""
    from benchmarks.external import seed_photos
    from ml.detector.scoremap import boxes_from_map, stride
    from ml.metrics import detection_metrics
    from ml.training import cross_validate_detector, summarise

    ds = seed_photos(model_dir.parent)
    photos = ds.labelled() + [p for p in ds.photos if p.label is None and p.boxed]
    by_id = {q.id: q for q in photos}
    cache = model_dir.with_name(f"{model_dir.name}.seed-cv{folds}-maps.npz")
    if not cache.exists():
        stored = {}

        def on_fold(k, det, test):
            for q, f in zip(test, det.predict([q.path for q in test]), strict=True):
                stored[f"{k}/{q.id}"] = f.heatmap

        cross_validate_detector(photos, folds, config, progress=False, on_fold=on_fold)
        tmp = cache.with_name(cache.name + ".tmp.npz")
        np.savez_compressed(tmp, **stored)
        os.replace(tmp, cache)
    stored = dict(np.load(cache))
    rows = []
    for name in names:
        c = replace(config, **SETTINGS[name])
        per_fold = []
        for k in range(folds):
            test = [by_id[key.split("/", 1)[1]] for key in stored if key.startswith(f"{k}/")]
            preds = []
            for q in test:
                boxes, scores = boxes_from_map(stored[f"{k}/{q.id}"], c, stride(c))
                preds.append((boxes / (c.image_size / max(q.width, q.height)), scores))
            sizes = [(q.width, q.height) for q in test]
            per_fold.append(detection_metrics([q.boxes for q in test], preds, sizes))
        rows.append((name, summarise(per_fold)))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model", help="a score-map detector folder (detector.keras + detector.json)")
    p.add_argument("--trained-on", type=int, default=150, help="VT train photos it was trained on")
    p.add_argument(
        "--val", type=int, default=246, help="unseen VT train photos to choose on (246: all)"
    )
    p.add_argument(
        "--seed-folds",
        type=int,
        default=0,
        help="also train this many seed CV folds (benchmarks/external.py's, at the model's "
        "size and epochs) and score the default and the val winner on them (protocol rule 1)",
    )
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    ensure_keras_home()
    from ml.detector import DetectorConfig, RustDetector
    from ml.detector.scoremap import boxes_from_map, stride
    from ml.masks import masked_photos
    from ml.metrics import detection_metrics, mask_metrics

    model_dir = Path(args.model)
    saved = DetectorConfig.from_dict(
        json.loads((model_dir / "detector.json").read_text())["config"]
    )
    # an artifact keeps the box settings it was saved with; "default" is today's
    current = DetectorConfig(family="scoremap")
    config = replace(saved, **{k: getattr(current, k) for k in BOX_KEYS})
    train = masked_photos(VT, "train")
    # the sample benchmarks/external.py trained on (vt_samples: seed 0)
    used = set(np.random.default_rng(0).choice(len(train), args.trained_on, replace=False))
    val = [q for i, q in enumerate(train) if i not in used][: args.val]
    test = masked_photos(VT, "test")
    size = config.image_size
    cache = model_dir.with_name(model_dir.name + ".maps.npz")
    names = [f"val/{q.id}" for q in val] + [f"test/{q.id}" for q in test]
    stored = dict(np.load(cache)) if cache.exists() else {}
    if any(n not in stored for n in names) or (
        cache.exists() and cache.stat().st_mtime < (model_dir / "detector.keras").stat().st_mtime
    ):
        det = RustDetector.load(model_dir)
        found = det.predict([q.image for q in val + test])
        stored = {n: f.heatmap for n, f in zip(names, found, strict=True)}
        tmp = cache.with_name(cache.name + ".tmp.npz")
        np.savez_compressed(tmp, **stored)
        os.replace(tmp, cache)
    maps_s = time.perf_counter() - t0

    masks = {q.id: np.asarray(Image.open(q.mask)) for q in val + test}

    def perfect(split, q):
        """The mask as a map: each cell's share of corrosion, on the model's cell grid."""
        rows, cols = stored[f"{split}/{q.id}"].shape
        rust = Image.fromarray((masks[q.id] > 0).astype(np.float32))
        return np.asarray(rust.resize((cols, rows), Image.BOX))

    def score(photos, split, config, oracle=False):
        preds = []
        for q in photos:
            scale = size / max(Image.open(q.image).size)
            prob = perfect(split, q) if oracle else stored[f"{split}/{q.id}"]
            boxes, scores = boxes_from_map(prob, config, stride(config))
            preds.append((boxes / scale, scores))
        return figures(photos, preds)

    def figures(photos, preds):
        m = detection_metrics([q.boxes for q in photos], preds)
        photo_masks = [masks[q.id] for q in photos]
        m |= mask_metrics(photo_masks, preds)
        m["box_on_rust"] = box_on_rust(photo_masks, preds)
        m["boxes"] = float(np.mean([len(b) for b, _ in preds]))
        return m

    def components(photos, states):
        """Ceiling of the data: each connected region of the full-resolution mask (of each
        condition state in `states` apart), boxed, scored by its area."""
        preds = []
        for q in photos:
            found = []
            for state in states:
                regions, _ = ndimage.label(np.isin(masks[q.id], state), np.ones((3, 3), bool))
                found += [
                    (x.start, y.start, x.stop, y.stop) for y, x in ndimage.find_objects(regions)
                ]
            b = np.asarray(found, np.float32).reshape(-1, 4)
            preds.append((b, (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
        return figures(photos, preds)

    t1 = time.perf_counter()
    results = {name: score(val, "val", replace(config, **kw)) for name, kw in SETTINGS.items()}
    best = max(results, key=lambda k: results[k]["AP50"])
    tested = {
        name: score(test, "test", replace(config, **SETTINGS[name]))
        for name in dict.fromkeys((BEFORE, "default", best))
    }
    print(
        table(
            f"VT val ({len(val)} VT train photos it never saw; maps {maps_s:.0f} s, "
            f"{len(SETTINGS)} settings {time.perf_counter() - t1:.0f} s); boxes = per photo",
            KEYS,
            list(results.items()),
        )
    )
    print(f"\nbest on val (AP50): {best}")
    print(
        table(
            f"VT test ({len(test)} photos): the default before, the default and the val winner",
            KEYS,
            list(tested.items()),
        )
    )
    oracles = {}
    for split, photos in (("val", val), ("test", test)):
        for name in dict.fromkeys((BEFORE, "default", best)):
            oracles[f"{split}: mask share map, {name}"] = score(
                photos, split, replace(config, **SETTINGS[name]), oracle=True
            )
        oracles[f"{split}: rust regions of the full mask"] = components(photos, [(1, 2, 3)])
        oracles[f"{split}: regions of each condition state"] = components(photos, [1, 2, 3])
    print(
        table(
            "Ceilings: a perfect map (each cell's corrosion share, on the model's cell grid) "
            "through the same extraction; boxes of the full-resolution mask's regions",
            KEYS,
            list(oracles.items()),
        )
    )
    if args.seed_folds:
        rows = seed_cv(
            args.seed_folds, config, model_dir, tuple(dict.fromkeys((BEFORE, "default", best)))
        )
        print(
            table(
                f"seed CV ({args.seed_folds} folds of benchmarks/external.py, trained at "
                f"{config.image_size} px, {config.epochs} epochs): mean ± std over the folds",
                ("AP", "AP50", "AP75", "AR100"),
                rows,
            )
        )
    print(
        "\ncommand: .venv/bin/python benchmarks/scoremap_boxes.py " + " ".join(argv or sys.argv[1:])
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
