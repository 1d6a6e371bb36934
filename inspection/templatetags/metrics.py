"""Metric names in words for the pages: `{{ "roc_auc"|metric_label }}` -> "ROC-AUC"."""

from __future__ import annotations

from django import template

register = template.Library()

# The names ml/metrics.py writes, as a supervisor reads them; others: underscores to spaces.
LABELS = {
    "accuracy": "Accuracy",
    "roc_auc": "ROC-AUC",
    "precision_rust": "Rust precision",
    "recall_rust": "Rust recall",
    "f1_rust": "Rust F1",
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "AP": "AP@[.5:.95]",
    "AP50": "AP50",
    "AP75": "AP75",
    "AR100": "AR100",
}


@register.filter
def metric_label(name: str) -> str:
    return LABELS.get(name, str(name).replace("_", " "))
