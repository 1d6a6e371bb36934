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
accuracy and ROC-AUC.

With `--detector`, the first `--det-repeats` runs of each strategy also retrain the
detector (ml defaults but REDUCED for a CPU: `--det-image-size` 256 px instead of 384,
`--det-epochs` 12 instead of 60) on the boxed photos labelled so far, every
`--det-every` rounds and at the last round, and measure its AP50 on the held-out boxed
photos (the same photos for queue and random). Each point after a run's first
warm-starts from the previous point's detector of the same run (`--det-warm-epochs`),
with `train_detector(init=...)`, as a training run warm-starts from the deployed
detector (for RUSTWATCH_WARM_START_EPOCHS, 12, the default here too): the loop as it
runs, one point a retraining. The queue still ranks by the classifier alone here (the
detector's uncertainty terms of `priority` are not used).

Prints the classifier curves (mean ± std over `--repeats` runs), the labels the
queue needs to reach random's final accuracy (the issue's measure; near the
ceiling it moves by a round with one photo of noise, so also the labels each
needs for 98 % and 99 % of it), the detector's AP50 curve, the wall time, and saves
a PNG plot (one panel per curve). Embeddings are cached in the default embedding
cache (`--cache` to choose another folder).

    .venv/bin/python benchmarks/active_learning.py                 # classifier curves
    .venv/bin/python benchmarks/active_learning.py --repeats 10 --plot al.png
    .venv/bin/python benchmarks/active_learning.py --repeats 10 --detector --det-repeats 1

Measured 2026-12-03 on the shared 2-core CPU (load average ~7-9), `--repeats 10
--detector --det-every 2 --det-repeats 1`: 30.0 min wall, of which the detector 25.3 min
(10 points, 152 s a point, mostly building, tracing and scoring, not epochs). 149 photos
(104 pool, 45 held out, 13 held-out boxed):

| labels | queue accuracy | random accuracy | queue roc_auc | random roc_auc |
| ------ | -------------- | --------------- | ------------- | -------------- |
| 10     | 0.829 ± 0.098  | 0.829 ± 0.098   | 0.944 ± 0.053 | 0.944 ± 0.053  |
| 20     | 0.904 ± 0.050  | 0.918 ± 0.072   | 0.983 ± 0.037 | 0.982 ± 0.022  |
| 30     | 0.978 ± 0.022  | 0.956 ± 0.034   | 0.999 ± 0.001 | 0.998 ± 0.003  |
| 40     | 0.996 ± 0.009  | 0.973 ± 0.031   | 1.000 ± 0.000 | 0.997 ± 0.007  |
| 50     | 0.987 ± 0.011  | 0.969 ± 0.027   | 1.000 ± 0.000 | 0.999 ± 0.002  |
| 60     | 0.996 ± 0.009  | 0.982 ± 0.009   | 1.000 ± 0.000 | 1.000 ± 0.000  |
| 70     | 0.987 ± 0.011  | 0.991 ± 0.011   | 1.000 ± 0.000 | 1.000 ± 0.000  |
| 80     | 0.991 ± 0.011  | 0.993 ± 0.010   | 1.000 ± 0.000 | 1.000 ± 0.000  |

Random's final accuracy 0.993 at 80 labels; the queue reaches it at 40 (50 % fewer);
99 % of it: queue 40, random 70; 98 %: queue 30, random 60.

Detector AP50 on the 13 held-out boxed photos, 1 repeat, REDUCED settings (256 px, first
point 12 epochs from ImageNet, each later one 12 epochs warm from the previous point):

| labels | queue AP50 | random AP50 | queue boxed photos | random boxed photos |
| ------ | ---------- | ----------- | ------------------ | ------------------- |
| 10     | 0.000      | 0.000       | 1.0                | 1.0                 |
| 30     | 0.039      | 0.012       | 11.0               | 7.0                 |
| 50     | 0.090      | 0.055       | 19.0               | 16.0                |
| 70     | 0.128      | 0.029       | 28.0               | 22.0                |
| 80     | 0.158      | 0.073       | 28.0               | 25.0                |

The queue's detector is ahead at every point, but read it with care: one repeat, and
differences under ~0.07 AP50 are noise for this detector on 13 photos
(benchmarks/warm_start.py); the classifier's queue also hands out more boxed (rust)
photos than random (28 vs 25 at 80 labels), and the curve is far from converged (the
queue's 70 -> 80 labels added no boxed photo, yet AP50 rose 0.128 -> 0.158 with 12 more
epochs). At these settings the whole curve stays below the article split's 0.25-0.34
(warm_start.py, 39 photos): a trend, not the detector's quality.
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
    """One labelling run; returns a list of {labels, accuracy, roc_auc[, AP50]} per round.

    `det_eval` (a new `DetectorCurve` run, or None): called every `args.det_every` rounds
    and at the last round with the photos labelled so far; its AP50 goes into the point."""
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
        curve.append(point)
        unlabelled = np.array([i for i in pool if i not in set(labelled)])
        last = len(labelled) >= args.max_labels or not len(unlabelled)
        if det_eval is not None and (round_no % args.det_every == 0 or last):
            point.update(det_eval([photos[i] for i in labelled]))
        if last:
            return curve
        labelled += choose(strategy, rng, clf, x_pred, emb, labelled, unlabelled, args.step)
        round_no += 1


class DetectorCurve:
    """The detector's points of one labelling run, on CPU-sized (reduced) settings.

    Each point trains on the boxed photos labelled so far and scores AP50 on the held-out
    boxed photos. The first point starts from ImageNet (`--det-epochs`); each later one
    warm-starts from the previous point's detector of the same run (`--det-warm-epochs`),
    through `train_detector(init=...)`, the warm start a training run makes from the
    deployed detector (services.training.warm_start_detector)."""

    def __init__(self, test, first, warm, folder: Path):
        self.test, self.first, self.warm, self.folder = test, first, warm, folder
        self.previous: Path | None = None
        self.seconds = 0.0

    def __call__(self, labelled) -> dict:
        from ml.training import det_samples

        train = det_samples(labelled)
        point: dict = {"AP50": None, "det_photos": len(train)}
        if not train or not self.test:
            return point
        from ml.detector import train_detector

        t = time.perf_counter()
        config = self.first if self.previous is None else self.warm
        det = train_detector(train, config, progress=False, init=self.previous)
        point["AP50"] = float(det.evaluate(self.test)["AP50"])
        self.previous = self.folder / f"{len(labelled)}"
        det.save(self.previous)
        self.seconds += time.perf_counter() - t
        return point


class DetectorCurves:
    """The settings and held-out boxed photos that every run's `DetectorCurve` shares."""

    def __init__(self, photos, held, args):
        from ml.detector import DetectorConfig
        from ml.training import det_samples

        self.test = det_samples([photos[i] for i in held])
        self.first = DetectorConfig.from_dict(
            {"image_size": args.det_image_size, "epochs": args.det_epochs}
        )
        self.warm_epochs = args.det_warm_epochs
        self.folder = Path(tempfile.mkdtemp(prefix="al_det_"))
        self.runs: list[DetectorCurve] = []

    def new_run(self, seed: int) -> DetectorCurve:
        from dataclasses import replace

        first = replace(self.first, seed=seed)
        warm = replace(first, epochs=self.warm_epochs)
        self.runs.append(
            DetectorCurve(self.test, first, warm, self.folder / f"run{len(self.runs)}")
        )
        return self.runs[-1]


def mean_curve(curves: list[list[dict]], key: str):
    """(labels, mean, std) over runs, at the label counts every run reached (NaN where no
    run has a value)."""
    n = min(len(c) for c in curves)
    labels = [curves[0][i]["labels"] for i in range(n)]
    values = np.array(
        [
            [c[i].get(key) if c[i].get(key) is not None else np.nan for i in range(n)]
            for c in curves
        ],
        dtype=float,
    )
    seen = ~np.isnan(values)
    count = seen.sum(axis=0)
    filled = np.where(seen, values, 0.0)
    mean = np.where(count > 0, filled.sum(axis=0) / np.maximum(count, 1), np.nan)
    var = np.where(seen, (values - mean) ** 2, 0.0).sum(axis=0) / np.maximum(count, 1)
    return labels, mean, np.where(count > 0, np.sqrt(var), np.nan)


def labels_to_reach(labels, values, target: float) -> int | None:
    for n, v in zip(labels, values, strict=True):
        if v >= target - 1e-9:
            return n
    return None


def plot(path: Path, panels: list[tuple[str, dict, str]]) -> None:
    """One panel per (metric key, {strategy: curves}, title) side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4))
    axes = np.atleast_1d(axes)
    for ax, (key, results, title) in zip(axes, panels, strict=True):
        for strategy, style in (("queue", "-o"), ("random", "--s")):
            labels, mean, std = mean_curve(results[strategy], key)
            ok = ~np.isnan(mean)
            x = np.array(labels)[ok]
            ax.plot(x, mean[ok], style, label=strategy, markersize=3)
            ax.fill_between(x, (mean - std)[ok], (mean + std)[ok], alpha=0.15)
        ax.set_xlabel("labelled photos")
        ax.set_ylabel(key)
        if title:
            ax.set_title(title, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("seed photos: active-learning queue vs random choice (held-out part)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table, columns padded."""
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return [
        "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"
        for r in [head, ["-" * w for w in widths], *rows]
    ]


def cell(mean: float, std: float, repeats: int) -> str:
    if np.isnan(mean):
        return "–"
    return f"{mean:.3f} ± {std:.3f}" if repeats > 1 else f"{mean:.3f}"


def detector_table(results: dict, det_repeats: int, curves: DetectorCurves, args) -> list[str]:
    """The detector AP50 curve: labels vs AP50 queue / random, and the boxed photos each had."""
    measured = {s: results[s][:det_repeats] for s in results}
    n = min(len(c) for s in measured for c in measured[s])
    rounds = [i for i in range(n) if "AP50" in measured["queue"][0][i]]
    ap = {s: mean_curve(measured[s], "AP50") for s in measured}
    boxed = {s: mean_curve(measured[s], "det_photos") for s in measured}
    rows = [
        [str(ap["queue"][0][i])]
        + [cell(ap[s][1][i], ap[s][2][i], det_repeats) for s in ("queue", "random")]
        + [f"{boxed[s][1][i]:.1f}" for s in ("queue", "random")]
        for i in rounds
    ]
    first = curves.first
    lines = [
        f"\ndetector AP50 on the {len(curves.test)} held-out boxed photos, {det_repeats} "
        f"repeat{'s' if det_repeats > 1 else ''}{' (mean ± std)' if det_repeats > 1 else ''}; "
        f"REDUCED settings for a CPU: {first.family} {first.backbone} at {first.image_size} px, "
        f"first point {args.det_epochs} epochs from ImageNet, each later point "
        f"{args.det_warm_epochs} epochs warm-started from the previous point's detector of "
        f"the same run (train_detector(init=...)); every {args.det_every} rounds and the last\n"
    ]
    lines += table(
        ["labels", "queue AP50", "random AP50", "queue boxed photos", "random boxed photos"],
        rows,
    )
    seconds = sum(r.seconds for r in curves.runs)
    lines.append(
        f"detector: {len(curves.runs)} runs, {seconds / 60:.1f} min training + scoring "
        f"({seconds / max(1, len(curves.runs) * len(rounds)):.0f} s a point)"
    )
    return lines


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
    p.add_argument("--det-every", type=int, default=2, help="a detector point every N rounds")
    p.add_argument(
        "--det-repeats", type=int, help="repeats with a detector curve (default: --repeats)"
    )
    p.add_argument(
        "--det-image-size", type=int, default=256, help="detector input px (ml default 384)"
    )
    p.add_argument(
        "--det-epochs", type=int, default=12, help="epochs of the first point, from ImageNet"
    )
    p.add_argument(
        "--det-warm-epochs",
        type=int,
        default=12,
        help="epochs of each later point, warm-started from the previous point's detector",
    )
    p.add_argument("--plot", default="active_learning.png")
    p.add_argument("--json")
    args = p.parse_args(argv)
    det_repeats = args.repeats if args.det_repeats is None else args.det_repeats
    if args.detector and not (1 <= det_repeats <= args.repeats and args.det_every >= 1):
        p.error("--det-repeats must be 1..--repeats and --det-every >= 1")
    started = time.perf_counter()
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
    det_curves = DetectorCurves(photos, held, args) if args.detector else None

    results: dict[str, list] = {"queue": [], "random": []}
    for r in range(args.repeats):
        for strategy in results:  # queue and random: the same held-out photos, same start
            det_eval = det_curves.new_run(r) if det_curves and r < det_repeats else None
            results[strategy].append(
                simulate(strategy, photos, x_train, x_pred, emb, pool, held, args, r, det_eval)
            )

    keys = ["accuracy", "roc_auc"]
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
    lines += table(head, rows)

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
    panels = [(k, results, "") for k in keys]
    if det_curves is not None:
        lines += detector_table(results, det_repeats, det_curves, args)
        measured = {s: results[s][:det_repeats] for s in results}
        panels.append(
            ("AP50", measured, f"detector, {det_repeats} repeat(s), reduced CPU settings")
        )
    plot(Path(args.plot), panels)
    lines.append(f"plot: {args.plot}")
    lines.append(f"wall time: {(time.perf_counter() - started) / 60:.1f} min")
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
