"""The loop's promise, simulated: a team whose photos differ from the seed labels k of them.

Start from the classifier trained on the base photos (the seed), let the team label k
photos of its own source, chosen by the queue (ml.active: uncertainty of the current model,
spread by k-center greedy, in rounds as the loop does) or at random, retrain on base +
labelled, and score a held-out test set of the new source. Everything runs on cached
embeddings (the prediction views of `RustClassifier.embed`), so a whole curve costs a few
logistic-regression fits, not a backbone pass; the benchmark of the loop issue can call
`simulate_adaptation` with its own embeddings.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

STRATEGIES = ("queue", "random")


@dataclass
class Pool:
    """Embeddings (N, V, D) of labelled photos, their labels (N,) and groups (N,)."""

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray

    def take(self, idx: Sequence[int]) -> Pool:
        idx = np.asarray(idx, dtype=int)
        return Pool(self.x[idx], self.y[idx], self.groups[idx])

    def __len__(self) -> int:
        return len(self.y)


def _join(a: Pool, b: Pool) -> Pool:
    return Pool(
        np.concatenate([a.x, b.x]), np.concatenate([a.y, b.y]), np.concatenate([a.groups, b.groups])
    )


def _fit(config, train: Pool):
    """A classifier head fitted on embeddings (no backbone is built: it is never needed)."""
    from ml.classifier import RustClassifier

    model = RustClassifier(config, weights=None)
    model.fit_embeddings(train.x, train.y, train.groups.tolist())
    return model


def _score(model, test: Pool, tta: int) -> dict:
    from ml.metrics import classification_metrics

    prob = model.predict_embeddings(test.x[:, :tta])
    m = classification_metrics(test.y, prob, model.threshold)
    return {k: m[k] for k in ("accuracy", "roc_auc", "recall_rust", "precision_rust")}


def simulate_adaptation(
    base: Pool,
    pool: Pool,
    test: Pool,
    config=None,
    ks: Sequence[int] = (0, 10, 20, 40, 80),
    strategies: Sequence[str] = STRATEGIES,
    repeats: int = 3,
    round_size: int = 10,
    seed: int = 0,
) -> dict:
    """Test metrics after labelling k pool photos, per strategy, mean ± std over repeats.

    `base`, `pool` and `test` hold embeddings under the config's training views (the
    first `len(config.predict_views)` of them are the prediction views). The queue labels
    `round_size` photos per round and retrains between rounds, as the loop does; random
    draws are nested (the 20 include the 10). Also reports "all": the whole pool labelled.
    Returns {"ks", "all": metrics, strategy: {k: {metric: mean, metric_std: std}}}.
    """
    from ml.active import select_batch, uncertainty_scores
    from ml.classifier import ClassifierConfig

    config = config or ClassifierConfig()
    tta = len(config.predict_views)
    ks = sorted(int(k) for k in ks)
    if ks[-1] > len(pool):
        raise ValueError(f"k = {ks[-1]} is more than the {len(pool)} pool photos")
    unknown = set(strategies) - set(STRATEGIES)
    if unknown:
        raise ValueError(f"unknown strategies {sorted(unknown)}; choose from {STRATEGIES}")
    start = _fit(config, base)
    mean_emb = pool.x[:, : len(config.photo_views)].mean(axis=1)  # what the queue spreads over
    result: dict = {"ks": ks, "all": _score(_fit(config, _join(base, pool)), test, tta)}
    for strategy in strategies:
        runs: dict[int, list[dict]] = {k: [] for k in ks}
        # the queue is deterministic given the data: one repeat says it all
        for r in range(repeats if strategy == "random" else 1):
            rng = np.random.default_rng(seed + r)
            chosen: list[int] = []
            model = start
            order = rng.permutation(len(pool)).tolist()
            for k in ks:
                if strategy == "random":  # one draw, nested in the next k's
                    chosen = order[:k]
                    model = _fit(config, _join(base, pool.take(chosen))) if k else start
                while strategy == "queue" and len(chosen) < k:  # rounds, as the loop runs
                    step = min(round_size, k - len(chosen))
                    rest = np.array([i for i in range(len(pool)) if i not in chosen])
                    prob = model.predict_embeddings(pool.x[rest, :tta])
                    scores = uncertainty_scores(prob, threshold=model.threshold)["score"]
                    labelled = mean_emb[chosen] if chosen else None
                    picked = select_batch(scores, mean_emb[rest], step, labelled)
                    chosen += [int(rest[i]) for i in picked]
                    model = _fit(config, _join(base, pool.take(chosen)))
                runs[k].append(_score(model, test, tta))
        result[strategy] = {k: _summary(v) for k, v in runs.items()}
    return result


def _summary(rows: list[dict]) -> dict:
    out: dict = {}
    for key in rows[0]:
        vals = np.array([r[key] for r in rows], dtype=float)
        out[key] = float(np.nanmean(vals))
        out[f"{key}_std"] = float(np.nanstd(vals))
    return out
