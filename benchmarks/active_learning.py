"""Does the queue save labels? A simulated labelling of the seed photos, queue vs random.

The seed photos (../shared/data/corrosion-seed, 149 distinct) are split once
into a fixed held-out part (grouped by near-duplicates, stratified) and a pool.
A run starts from 10 labelled pool photos (5 rust, 5 not) and adds 10 a round,
chosen either by the queue's rule (`ml.active.priority`, the score
`services.suggestions` stores as `Photo.queue_score`: the classifier's margin
weighted by the photo's typicality of the classifier's training photos; then
diversity by k-center greedy over the embeddings, as `services.queue` spreads
what it hands out) or at random; after each round the classifier is refitted
(`RustClassifier.fit_embeddings`, the ml defaults' calibration and threshold on
frozen-backbone embeddings, computed once) and scored on the held-out part:
accuracy and ROC-AUC. With `--detector`, the detector (ml defaults, `--det-epochs`)
is retrained on the boxed photos labelled so far every `--det-every` rounds and
its AP50 measured on the held-out boxed photos (slow: minutes per point on a CPU).

Prints both learning curves (mean ± std over `--repeats` runs), the labels the
queue needs to reach random's final accuracy (the issue's measure; near the
ceiling it moves by a round with one photo of noise, so also the labels each
needs for 98 % and 99 % of it), and saves a PNG plot. Embeddings are cached in
the default embedding cache (`--cache` to choose another folder).

    .venv/bin/python benchmarks/active_learning.py                 # classifier curves
    .venv/bin/python benchmarks/active_learning.py --repeats 10 --plot al.png
    .venv/bin/python benchmarks/active_learning.py --detector --det-every 3 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from benchmarks.speed import SEED, ensure_keras_home  # noqa: E402

log = logging.getLogger("active_learning")
GOAL_SAVING = 0.5  # the queue reaches random's final accuracy with >= 50 % fewer labels


def split_held_out(photos, fraction: float, seed: int = 0):
    """Fixed held-out indices: whole near-duplicate groups, about `fraction` of each class."""
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for label in (0, 1):
        groups = sorted({p.group or p.id for p in photos if p.label == label})
        rng.shuffle(groups)
        want = round(fraction * sum(p.label == label for p in photos))
        count = 0
        for g in groups:
            if count >= want:
                break
            members = [i for i, p in enumerate(photos) if (p.group or p.id) == g]
            held += members
            count += len(members)
    held_set = set(held)
    # a group with photos of both labels goes wholly to the held-out part
    held_groups = {photos[i].group or photos[i].id for i in held_set}
    held = [i for i, p in enumerate(photos) if (p.group or p.id) in held_groups]
    pool = [i for i in range(len(photos)) if i not in set(held)]
    return np.array(pool), np.array(held)


def choose(strategy, rng, clf, x_pred, emb, labelled, unlabelled, k):
    """The next k pool indices to label."""
    from ml.active import priority, select_batch, typicality

    if strategy == "random" or len(unlabelled) <= k:
        return list(rng.choice(unlabelled, size=min(k, len(unlabelled)), replace=False))
    prob = clf.predict_embeddings(x_pred[unlabelled])
    # what services.suggestions.store_prediction stores as the photo's queue score
    scores = priority(prob, typicality=typicality(emb[unlabelled], clf.centre))["score"]
    picked = select_batch(scores, emb[unlabelled], k, labelled=emb[labelled])
    return [int(unlabelled[i]) for i in picked]


def simulate(strategy, photos, x_train, x_pred, emb, pool, held, args, seed, det_eval=None):
    """One labelling run; returns a list of {labels, accuracy, roc_auc[, AP50]} per round."""
    from ml.classifier import ClassifierConfig, RustClassifier
    from ml.metrics import classification_metrics

    rng = np.random.default_rng(seed)
    y = np.array([p.label for p in photos])
    groups = [p.group or p.id for p in photos]
    rust = [i for i in pool if y[i] == 1]
    norust = [i for i in pool if y[i] == 0]
    half = args.start // 2
    labelled = list(rng.choice(rust, half, replace=False)) + list(
        rng.choice(norust, args.start - half, replace=False)
    )
    curve = []
    round_no = 0
    while True:
        clf = RustClassifier(ClassifierConfig(**args.classifier))
        clf.fit_embeddings(x_train[labelled], y[labelled], [groups[i] for i in labelled])
        m = classification_metrics(y[held], clf.predict_embeddings(x_pred[held]), clf.threshold)
        point = {"labels": len(labelled), "accuracy": m["accuracy"], "roc_auc": m["roc_auc"]}
        if det_eval is not None and round_no % args.det_every == 0:
            point["AP50"] = det_eval([photos[i] for i in labelled])
        curve.append(point)
        unlabelled = np.array([i for i in pool if i not in set(labelled)])
        if len(labelled) >= args.max_labels or not len(unlabelled):
            return curve
        labelled += choose(strategy, rng, clf, x_pred, emb, labelled, unlabelled, args.step)
        round_no += 1


def detector_evaluator(photos, held, args):
    """AP50 on the held-out boxed photos of a detector trained on the labelled boxed ones."""
    from ml.detector import DetectorConfig, DetSample, train_detector

    test = [
        DetSample(photos[i].path, np.asarray(photos[i].boxes, np.float32))
        for i in held
        if photos[i].boxed
    ]
    config = DetectorConfig.from_dict({"epochs": args.det_epochs})

    def evaluate(labelled) -> float | None:
        train = [DetSample(p.path, np.asarray(p.boxes, np.float32)) for p in labelled if p.boxed]
        if not train or not test:
            return None
        det = train_detector(train, config, progress=False)
        return float(det.evaluate(test)["AP50"])

    return evaluate


def mean_curve(curves: list[list[dict]], key: str):
    """(labels, mean, std) over runs, at the label counts every run reached."""
    n = min(len(c) for c in curves)
    labels = [curves[0][i]["labels"] for i in range(n)]
    values = np.array(
        [
            [c[i].get(key) if c[i].get(key) is not None else np.nan for i in range(n)]
            for c in curves
        ],
        dtype=float,
    )
    return labels, np.nanmean(values, axis=0), np.nanstd(values, axis=0)


def labels_to_reach(labels, values, target: float) -> int | None:
    for n, v in zip(labels, values, strict=True):
        if v >= target - 1e-9:
            return n
    return None


def plot(path: Path, results: dict, keys: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(keys), figsize=(5 * len(keys), 4))
    axes = np.atleast_1d(axes)
    for ax, key in zip(axes, keys, strict=True):
        for strategy, style in (("queue", "-o"), ("random", "--s")):
            labels, mean, std = mean_curve(results[strategy], key)
            ok = ~np.isnan(mean)
            x = np.array(labels)[ok]
            ax.plot(x, mean[ok], style, label=strategy, markersize=3)
            ax.fill_between(x, (mean - std)[ok], (mean + std)[ok], alpha=0.15)
        ax.set_xlabel("labelled photos")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("seed photos: active-learning queue vs random choice (held-out part)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--start", type=int, default=10)
    p.add_argument("--step", type=int, default=10)
    p.add_argument("--max-labels", type=int, default=80)
    p.add_argument("--held-out", type=float, default=0.3)
    p.add_argument("--n-aug", type=int, default=2, help="augmented training views per photo")
    p.add_argument("--cache", help="embedding cache folder (default: ml's default cache)")
    p.add_argument("--detector", action="store_true", help="also the detector's AP50 curve")
    p.add_argument("--det-every", type=int, default=2)
    p.add_argument("--det-epochs", type=int, default=15)
    p.add_argument("--plot", default="active_learning.png")
    p.add_argument("--json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    ensure_keras_home()
    # hundreds of small fits: one BLAS thread each is ~50x faster on a loaded machine
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)

    from ml.classifier import ClassifierConfig, RustClassifier
    from ml.dataset import from_folders
    from ml.embeddings import EmbeddingCache

    tmp = Path(tempfile.mkdtemp(prefix="al_"))
    ds = from_folders(SEED, tmp / "voc")
    photos = ds.labelled()
    config = ClassifierConfig(n_aug=args.n_aug)
    args.classifier = {**config.__dict__}
    clf = RustClassifier(config)
    cache = EmbeddingCache(args.cache)  # None: $RUSTWATCH_EMBEDDING_CACHE or ~/.cache
    paths, shas = [ph.path for ph in photos], [ph.sha256 for ph in photos]
    x_train = clf.embed(paths, shas, config.train_views, cache)
    x_pred = clf.embed(paths, shas, config.predict_views, cache)
    emb = x_pred.mean(axis=1)
    pool, held = split_held_out(photos, args.held_out)
    det_eval = detector_evaluator(photos, held, args) if args.detector else None

    results: dict[str, list] = {"queue": [], "random": []}
    for r in range(args.repeats):
        for strategy in results:
            results[strategy].append(
                simulate(strategy, photos, x_train, x_pred, emb, pool, held, args, r, det_eval)
            )

    keys = ["accuracy", "roc_auc"] + (["AP50"] if args.detector else [])
    lines = [
        f"\nseed photos: {len(photos)} ({len(pool)} pool, {len(held)} held out, "
        f"{sum(photos[i].boxed for i in held)} held-out boxed); start {args.start}, "
        f"+{args.step} a round, {args.repeats} repeats (mean ± std)\n"
    ]
    head = ["labels"] + [f"{s} {k}" for k in keys for s in ("queue", "random")]
    curves = {(s, k): mean_curve(results[s], k) for s in results for k in keys}
    labels = curves[("queue", "accuracy")][0]
    rows = []
    for i, n in enumerate(labels):
        row = [str(n)]
        for k in keys:
            for s in ("queue", "random"):
                _, mean, std = curves[(s, k)]
                row.append("–" if np.isnan(mean[i]) else f"{mean[i]:.3f} ± {std[i]:.3f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, ["-" * w for w in widths], *rows]:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")

    _, q_acc, _ = curves[("queue", "accuracy")]
    r_labels, r_acc, _ = curves[("random", "accuracy")]
    target = float(r_acc[-1])
    q_need = labels_to_reach(labels, q_acc, target)
    saving = None if q_need is None else 1 - q_need / r_labels[-1]
    lines.append(
        f"\nrandom's final accuracy {target:.3f} at {r_labels[-1]} labels; "
        f"the queue reaches it at {q_need} labels"
        + (f": {100 * saving:.0f} % fewer labels" if saving is not None else ": not reached")
        + f" (goal: >= {100 * GOAL_SAVING:.0f} % fewer)."
    )
    for share in (0.99, 0.98):
        need = {
            s: labels_to_reach(labels, curves[(s, "accuracy")][1], share * target) for s in results
        }
        lines.append(
            f"{100 * share:.0f} % of it ({share * target:.3f}): queue {need['queue']} labels, "
            f"random {need['random']}"
        )
    lines.append(
        "mean accuracy over all rounds after the first: "
        + ", ".join(
            f"{s} {np.mean([[pt['accuracy'] for pt in c[1:]] for c in results[s]]):.4f}"
            for s in results
        )
    )
    plot(Path(args.plot), results, keys)
    lines.append(f"plot: {args.plot}")
    lines.append(
        "command: .venv/bin/python benchmarks/active_learning.py " + " ".join(argv or sys.argv[1:])
    )
    print("\n".join(lines))
    if args.json:
        Path(args.json).write_text(
            json.dumps({"results": results, "saving": saving, "target": target}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
