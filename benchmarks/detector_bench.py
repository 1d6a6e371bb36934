"""Rust detector quality on the seed photos, beside the article's figures.

Trains `ml.detector` on the article's split (detection/train, 39 photos; test
on detection/test, 6 photos, 16 boxes) and, with --folds, in grouped k-fold
cross-validation over all 45 boxed photos (exact and perceptual duplicates in
one group; folds deterministic). Prints a table and the command that made it.

    .venv/bin/python benchmarks/detector_bench.py --epochs 60 --image-size 384 --folds 5
    .venv/bin/python benchmarks/detector_bench.py --epochs 5 --image-size 256 --folds 0  # quick

`--set key=value` overrides any DetectorConfig field (JSON values), e.g.
`--set head_width=128 --set train_backbone=false`. ML-core's
benchmarks/quality.py may call `run_article` / `run_cv` directly.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.detector import DetectorConfig, DetSample, train_detector  # noqa: E402
from ml.metrics import COCO_KEYS, detection_metrics  # noqa: E402
from ml.voc import read_voc  # noqa: E402

SEED = ROOT.parent / "shared" / "data" / "corrosion-seed"
WEIGHTS = ROOT.parent / "shared" / "weights"
ARTICLE = {"AP": 0.068, "AP50": 0.183, "AP75": 0.028, "AR1": 0.075, "AR10": 0.169}
TARGET = {"AP": 0.20, "AP50": 0.45}

log = logging.getLogger("detector_bench")


def load_split(folder: Path) -> list[DetSample]:
    """Boxed photos of one labelImg folder (image next to its XML), sorted by name."""
    samples = []
    for xml in sorted(folder.glob("*.xml")):
        ann = read_voc(xml)
        image = next(
            (p for p in (folder / ann.filename, xml.with_suffix(".jpg")) if p.is_file()), None
        )
        if image is None:
            raise SystemExit(f"{xml}: image {ann.filename!r} not found")
        boxes = np.array([[b.xmin, b.ymin, b.xmax, b.ymax] for b in ann.boxes], np.float32)
        samples.append(DetSample(image, boxes.reshape(-1, 4)))
    return samples


def duplicate_groups(samples: list[DetSample], max_distance: int = 4) -> list[int]:
    """Group id per photo: same bytes or perceptual hashes within `max_distance` bits."""
    import imagehash
    from PIL import Image

    digests = [hashlib.sha256(s.image_path.read_bytes()).hexdigest() for s in samples]
    hashes = []
    for s in samples:
        with Image.open(s.image_path) as img:
            hashes.append(imagehash.phash(img.convert("RGB")))
    parent = list(range(len(samples)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(samples)):
        for j in range(i):
            if digests[i] == digests[j] or hashes[i] - hashes[j] <= max_distance:
                parent[find(i)] = find(j)
    return [find(i) for i in range(len(samples))]


def folds(samples: list[DetSample], k: int) -> list[tuple[list[int], list[int]]]:
    """Deterministic grouped k folds (scikit-learn GroupKFold over name-sorted photos)."""
    from sklearn.model_selection import GroupKFold

    groups = duplicate_groups(samples)
    idx = np.arange(len(samples))
    splits = GroupKFold(n_splits=k).split(idx, groups=groups)
    return [(tr.tolist(), te.tolist()) for tr, te in splits]


def evaluate(detector, test: list[DetSample]) -> dict:
    """COCO metrics on `test` with the configured `tta_flip`, and under "other_tta" with
    the other setting (the same trained weights: flip TTA is a predict-time choice)."""
    configured = detector.config.tta_flip
    runs = {}
    for tta in (configured, not configured):
        detector.config.tta_flip = tta
        detector.predict([test[0].image_path])  # warm up: trace the predict function once
        t0 = time.perf_counter()
        preds = detector.predict([s.image_path for s in test], score_threshold=0.01)
        ms = (time.perf_counter() - t0) * 1000 / max(1, len(test))
        runs[tta] = detection_metrics([s.boxes for s in test], preds)
        runs[tta]["predict_ms"] = round(ms, 1)
    detector.config.tta_flip = configured
    return {**runs[configured], "other_tta": runs[not configured]}


def run_article(config: DetectorConfig, seed_dir: Path = SEED, progress: bool = False) -> dict:
    """Train on detection/train, score on detection/test (the article's split)."""
    train = load_split(seed_dir / "detection" / "train")
    test = load_split(seed_dir / "detection" / "test")
    det = train_detector(train, config, progress=progress)
    out = evaluate(det, test)
    out["train_seconds"] = det.info["train_seconds"]
    return out


def run_cv(
    config: DetectorConfig, k: int = 5, seed_dir: Path = SEED, progress: bool = False
) -> dict:
    """Grouped k-fold CV over all boxed photos: per-fold metrics, mean and std."""
    samples = load_split(seed_dir / "detection" / "train") + load_split(
        seed_dir / "detection" / "test"
    )
    per_fold = []
    for n, (tr, te) in enumerate(folds(samples, k)):
        det = train_detector([samples[i] for i in tr], config, progress=progress)
        m = evaluate(det, [samples[i] for i in te])
        m["train_seconds"] = det.info["train_seconds"]
        log.info(
            "fold %d/%d: AP %.3f AP50 %.3f (%d test photos)", n + 1, k, m["AP"], m["AP50"], len(te)
        )
        per_fold.append(m)
    return {
        "folds": per_fold,
        **mean_std(per_fold, [*COCO_KEYS, "train_seconds"]),
        "other_tta": mean_std([f["other_tta"] for f in per_fold], COCO_KEYS),
    }


def mean_std(rows: list[dict], keys: list[str]) -> dict:
    """{"mean": {key: ...}, "std": {key: ...}} over per-fold figures."""
    return {
        stat: {key: float(fn([r[key] for r in rows])) for key in keys}
        for stat, fn in (("mean", np.mean), ("std", np.std))
    }


def ensure_keras_home() -> None:
    """Use ../shared/weights offline: a KERAS_HOME of our own unless one is set."""
    if os.environ.get("KERAS_HOME") or not WEIGHTS.is_dir():
        return
    home = Path(tempfile.mkdtemp(prefix="keras_home_"))
    (home / "models").mkdir()
    for f in WEIGHTS.glob("*.h5"):
        shutil.copy(f, home / "models" / f.name)
    os.environ["KERAS_HOME"] = str(home)


def table(article: dict | None, cv: dict | None, tta: bool = False) -> str:
    """Markdown table; `tta` is the configured tta_flip (the "other" rows have the opposite)."""
    keys = ["AP", "AP50", "AP75", "AR1", "AR10", "AR100"]
    name, other = ("flip TTA", "no TTA") if tta else ("no TTA", "flip TTA")
    rows = ["| run | " + " | ".join(keys) + " | train s |", "|---" * (len(keys) + 2) + "|"]
    rows.append(
        "| article (SSD MobileNet v1) | "
        + " | ".join(f"{ARTICLE[k]:.3f}" if k in ARTICLE else "–" for k in keys)
        + " | – |"
    )
    rows.append(
        "| target (issue 4) | "
        + " | ".join(f"≥ {TARGET[k]:.2f}" if k in TARGET else "–" for k in keys)
        + " | – |"
    )
    if article:
        for label, fig, train_s in (
            (name, article, f"{article['train_seconds']:.0f}"),
            (other, article["other_tta"], "same"),
        ):
            rows.append(
                f"| ours, article split, {label} | "
                + " | ".join(f"{fig[k]:.3f}" for k in keys)
                + f" | {train_s} |"
            )
    if cv:
        n = len(cv["folds"])
        for label, fig, train_s in (
            (name, cv, f"{cv['mean']['train_seconds']:.0f}/fold"),
            (other, cv["other_tta"], "same"),
        ):
            m, s = fig["mean"], fig["std"]
            rows.append(
                f"| ours, {n}-fold CV (mean ± std), {label} | "
                + " | ".join(f"{m[k]:.3f} ± {s[k]:.3f}" for k in keys)
                + f" | {train_s} |"
            )
    return "\n".join(rows)


def parse_set(items: list[str]) -> dict:
    out = {}
    for item in items:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--image-size", type=int, default=None)
    ap.add_argument("--backbone", default=None)
    ap.add_argument("--folds", type=int, default=5, help="0 skips cross-validation")
    ap.add_argument("--no-article", action="store_true", help="skip the article split")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--json", type=Path, help="write all figures here")
    ap.add_argument("--progress", action="store_true")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    ensure_keras_home()
    overrides = parse_set(args.set)
    for key, value in (
        ("epochs", args.epochs),
        ("image_size", args.image_size),
        ("backbone", args.backbone),
    ):
        if value is not None:
            overrides[key] = value
    try:
        config = DetectorConfig.from_dict({**DetectorConfig().to_dict(), **overrides})
    except (TypeError, ValueError) as exc:
        ap.error(str(exc))
    article = None if args.no_article else run_article(config, progress=args.progress)
    if article:
        log.info("article split: %s", {k: round(article[k], 3) for k in COCO_KEYS})
    cv = run_cv(config, args.folds, progress=args.progress) if args.folds > 1 else None
    print("\n" + table(article, cv, config.tta_flip))
    print("\nconfig: " + json.dumps(config.to_dict()))
    print("command: " + " ".join([Path(sys.executable).name, *sys.argv]))
    if args.json:
        args.json.write_text(
            json.dumps({"config": config.to_dict(), "article": article, "cv": cv}, indent=2)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
