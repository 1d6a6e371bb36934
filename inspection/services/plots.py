"""A model version's plots, rendered by the worker into its artifact folder (PNG).

- classifier: precision-recall curve, ROC curve and confusion matrix on the
  validation photos (from the scores the gate evaluation kept in the manifest)
- detector: the training loss curves (Keras history in the manifest)

Matplotlib's Agg backend only: no display, no GUI toolkit.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)

PLOTS = {
    "classifier": ("pr_curve", "roc_curve", "confusion_matrix"),
    "detector": ("loss_curves",),
}


def render_plots(kind: str, manifest: dict, out: Path) -> list[str]:
    """Write the kind's PNGs into `out`; returns the names written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: list[str] = []

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / f"{name}.png", dpi=100)
        plt.close(fig)
        written.append(f"{name}.png")

    if kind == "classifier":
        val = (manifest.get("val_scores") or {}).get("classifier") or {}
        y, prob = val.get("y") or [], val.get("prob") or []
        threshold = (manifest.get("thresholds") or {}).get("classifier", 0.5)
        if len(set(y)) == 2:
            from sklearn.metrics import confusion_matrix, precision_recall_curve, roc_curve

            precision, recall, _ = precision_recall_curve(y, prob)
            fig, ax = plt.subplots(figsize=(4, 4))
            ax.plot(recall, precision, color="#c2410c")
            ax.set(xlabel="Recall (rust)", ylabel="Precision (rust)", title="Precision-recall")
            ax.set_xlim(0, 1), ax.set_ylim(0, 1.02)
            save(fig, "pr_curve")
            fpr, tpr, _ = roc_curve(y, prob)
            fig, ax = plt.subplots(figsize=(4, 4))
            ax.plot(fpr, tpr, color="#c2410c")
            ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1)
            ax.set(xlabel="False positive rate", ylabel="True positive rate", title="ROC")
            save(fig, "roc_curve")
            cm = confusion_matrix(y, [int(p >= threshold) for p in prob], labels=[0, 1])
            fig, ax = plt.subplots(figsize=(4, 4))
            ax.imshow(cm, cmap="Oranges")
            for (i, j), n in __import__("numpy").ndenumerate(cm):
                ax.text(j, i, str(n), ha="center", va="center", fontsize=14)
            ax.set_xticks([0, 1], ["no rust", "rust"])
            ax.set_yticks([0, 1], ["no rust", "rust"])
            ax.set(xlabel="Predicted", ylabel="True", title=f"Confusion (t={threshold:.2f})")
            save(fig, "confusion_matrix")
    else:
        history = ((manifest.get("detector") or {}).get("info") or {}).get("history") or {}
        if history:
            fig, ax = plt.subplots(figsize=(5, 3.5))
            for key, values in sorted(history.items()):
                if "loss" in key and values:
                    ax.plot(range(1, len(values) + 1), values, label=key)
            ax.set(xlabel="Epoch", ylabel="Loss", title="Detector training loss")
            ax.legend(fontsize=8)
            save(fig, "loss_curves")
    return written
