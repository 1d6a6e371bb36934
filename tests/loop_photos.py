"""Synthetic labelled photos for the learning-loop tests (rust blotches on grey paint)."""

from __future__ import annotations

import io

import numpy as np
from django.core.files.base import ContentFile
from PIL import Image

RUST = (150, 60, 20)


def photo_bytes(kind: str, seed: int, size: tuple[int, int] = (96, 72)) -> tuple[bytes, tuple]:
    """A JPEG and its rust box ((0,0,0,0) for no rust): each seed a different photo."""
    rng = np.random.default_rng(seed)
    w, h = size
    base = np.array((90, 110, 140) if kind == "norust" else (120, 100, 90), dtype=float)
    img = base + rng.normal(0, 14, (h, w, 3))
    # a few random blocks so no two photos are near-duplicates
    for _ in range(6):
        x, y = int(rng.integers(0, w - 16)), int(rng.integers(0, h - 16))
        img[y : y + 16, x : x + 16] += rng.normal(0, 40, 3)
    box = (0, 0, 0, 0)
    if kind == "rust":
        x0, y0 = int(rng.integers(4, w // 2)), int(rng.integers(4, h // 2))
        x1, y1 = x0 + w // 3, y0 + h // 3
        img[y0:y1, x0:x1] = np.array(RUST) + rng.normal(0, 25, (y1 - y0, x1 - x0, 3))
        box = (x0, y0, x1, y1)
    buf = io.BytesIO()
    Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(buf, "JPEG", quality=90)
    return buf.getvalue(), box


def add_photos(inspection, *, rust: int, norust: int, unlabelled: int = 0, seed: int = 0):
    """Ingest photos; label rust ones (verdict + a human box) and norust ones (verdict).

    Returns (labelled photos, unlabelled photos).
    """
    from inspection.models import Box, Label, Photo, Verdict
    from inspection.services.photos import ingest_photo

    label = Label.objects.get(name="rust")
    labelled, rest = [], []
    plan = [("rust", True)] * rust + [("norust", True)] * norust + [("rust", False)] * unlabelled
    for i, (kind, labelled_one) in enumerate(plan):
        data, box = photo_bytes(kind, seed * 1000 + i)
        photo = ingest_photo(
            inspection=inspection,
            file=ContentFile(data, name=f"{kind}-{seed}-{i}.jpg"),
            filename=f"{kind}-{seed}-{i}.jpg",
            user=None,
        )
        if not labelled_one:
            rest.append(photo)
            continue
        verdict = Verdict.RUST if kind == "rust" else Verdict.NORUST
        Photo.objects.filter(pk=photo.pk).update(verdict=verdict)
        if kind == "rust":
            Box.objects.create(
                photo=photo, label=label, xmin=box[0], ymin=box[1], xmax=box[2], ymax=box[3]
            )
        labelled.append(photo)
    return labelled, rest


# Tiny ml settings: seconds per run on a CPU (behaviour, not quality, is under test).
TINY_TRAIN_CONFIG = {
    "classifier": {"backbone": "mobilenet_025", "image_sizes": [48], "n_aug": 1},
    "detector": {
        "backbone": "mobilenet_025",
        "image_size": 64,
        "max_level": 5,
        "epochs": 1,
        "batch_size": 4,
        "predict_batch": 4,
        "fpn_width": 16,
        "head_width": 16,
        "head_layers": 1,
        "augment": False,
    },
}
