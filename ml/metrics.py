"""Evaluation metrics: scikit-learn for the classifier, pycocotools for the detector.

Nothing here is hand-written: the detector is scored by COCO's own evaluator
(as the seed article was), the classifier by scikit-learn.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np

COCO_KEYS = ("AP", "AP50", "AP75", "AR1", "AR10", "AR100")


def classification_metrics(
    y_true: Sequence[int], prob_rust: Sequence[float], threshold: float = 0.5
) -> dict:
    """Accuracy, ROC-AUC, rust precision/recall/F1 and the confusion matrix.

    `y_true` is 1 for rust, 0 for no rust; `prob_rust` the model's probability.
    The confusion matrix is [[tn, fp], [fn, tp]] (rows: truth norust, rust).
    """
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    y_true = np.asarray(y_true, dtype=int)
    prob = np.asarray(prob_rust, dtype=float)
    y_pred = (prob >= threshold).astype(int)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=[1], average=None, zero_division=0
    )
    auc = float(roc_auc_score(y_true, prob)) if len(set(y_true.tolist())) == 2 else float("nan")
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "roc_auc": auc,
        "precision_rust": float(precision[0]),
        "recall_rust": float(recall[0]),
        "f1_rust": float(f1[0]),
        "threshold": float(threshold),
        "confusion": confusion_matrix(y_true, y_pred, labels=[0, 1]).tolist(),
        "n": int(len(y_true)),
    }


def detection_metrics(
    ground_truth: Sequence[np.ndarray],
    predictions: Sequence[tuple[np.ndarray, np.ndarray]],
    image_sizes: Sequence[tuple[int, int]] | None = None,
) -> dict:
    """COCO bbox AP@[.5:.95], AP50, AP75, AR@1/10/100 for one class (rust).

    `ground_truth[i]` is an (N, 4) array of xyxy pixel boxes of image i;
    `predictions[i]` is (boxes (M, 4) xyxy, scores (M,)). `image_sizes[i]` is
    (width, height), only recorded in the COCO image entries.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, annotations, detections = [], [], []
    ann_id = 1
    for i, gt in enumerate(ground_truth):
        width, height = image_sizes[i] if image_sizes else (0, 0)
        images.append({"id": i + 1, "width": int(width), "height": int(height)})
        for x0, y0, x1, y1 in np.asarray(gt, dtype=float).reshape(-1, 4):
            w, h = x1 - x0, y1 - y0
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": i + 1,
                    "category_id": 1,
                    "bbox": [x0, y0, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
            ann_id += 1
        boxes, scores = predictions[i]
        for (x0, y0, x1, y1), s in zip(
            np.asarray(boxes, dtype=float).reshape(-1, 4),
            np.asarray(scores, dtype=float),
            strict=True,
        ):
            detections.append(
                {
                    "image_id": i + 1,
                    "category_id": 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": float(s),
                }
            )
    if not annotations:
        raise ValueError("detection_metrics needs at least one ground-truth box")
    gt_coco = COCO()
    gt_coco.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "rust"}],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt_coco.createIndex()
        if not detections:
            return dict.fromkeys(COCO_KEYS, 0.0)
        dt_coco = gt_coco.loadRes(detections)
        evaluator = COCOeval(gt_coco, dt_coco, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    s = evaluator.stats
    # COCO's stats: 0 AP, 1 AP50, 2 AP75, 6 AR1, 7 AR10, 8 AR100 (-1 means undefined).
    return {k: max(float(s[i]), 0.0) for k, i in zip(COCO_KEYS, (0, 1, 2, 6, 7, 8), strict=True)}


def mask_metrics(
    masks: Sequence[np.ndarray],
    predictions: Sequence,
    min_score: float = 0.3,
) -> dict:
    """How well detections agree with rust masks (coarse, nested boxes make AP unfair).

    `masks[i]` is (H, W), non-zero = rust; `predictions[i]` is (boxes, scores) with an
    optional `.heatmap` (rows x cols of P(rust) over the photo). Returns the share of
    rust pixels inside a box scoring >= `min_score` ("covered"), the share of those
    boxes' area that is rust ("on_rust"), and, with heat maps, the ROC-AUC of the cells'
    probability for "mostly rust" cells vs clean ones (scikit-learn).
    """
    from PIL import Image
    from sklearn.metrics import roc_auc_score

    rust_total = rust_covered = box_area = box_on_rust = 0
    cell_y: list[np.ndarray] = []
    cell_p: list[np.ndarray] = []
    for mask, pred in zip(masks, predictions, strict=True):
        rust = np.asarray(mask) > 0
        inside = np.zeros_like(rust)
        for (x0, y0, x1, y1), s in zip(np.asarray(pred[0]), np.asarray(pred[1]), strict=True):
            if s >= min_score:
                inside[int(y0) : int(np.ceil(y1)), int(x0) : int(np.ceil(x1))] = True
        rust_total += int(rust.sum())
        rust_covered += int((rust & inside).sum())
        box_area += int(inside.sum())
        box_on_rust += int((rust & inside).sum())
        heat = getattr(pred, "heatmap", None)
        if heat is not None:
            rows, cols = heat.shape
            share = np.asarray(
                Image.fromarray(rust.astype(np.float32)).resize((cols, rows), Image.BOX)
            )
            keep = (share >= 0.5) | (share == 0)  # mostly rust vs clean cells
            cell_y.append((share[keep] >= 0.5).astype(int))
            cell_p.append(heat[keep])
    out = {
        "covered": rust_covered / max(rust_total, 1),
        "on_rust": box_on_rust / max(box_area, 1),
    }
    if cell_y:
        y, p = np.concatenate(cell_y), np.concatenate(cell_p)
        if len(set(y.tolist())) == 2:
            out["heatmap_auc"] = float(roc_auc_score(y, p))
    return out
