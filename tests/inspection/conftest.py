"""Fixtures of the inspection tests."""

from __future__ import annotations

import io

import pytest

from inspection.models import Label, Photo
from inspection.services.boxes import save_boxes
from inspection.services.photos import ingest_photo, set_verdict
from tests.api.conftest import add_suggestion, scene_bytes


@pytest.fixture
def annotated_photos(inspection, inspector) -> list[Photo]:
    """Three photos: two labels and a difficult box; none at all; human + a suggestion."""
    Label.objects.create(name="paint", color="#1c7ed6")

    def add(seed, size, name):
        return ingest_photo(
            inspection=inspection,
            file=io.BytesIO(scene_bytes(seed, size)),
            filename=name,
            user=inspector,
        )

    p1, p2, p3 = (
        add(1, (80, 60), "deck.jpg"),
        add(2, (50, 40), "clean.jpg"),
        add(3, (64, 48), "x.jpg"),
    )
    save_boxes(
        photo=p1,
        boxes=[
            {"xmin": 0, "ymin": 0, "xmax": 40, "ymax": 30},
            {"xmin": 10, "ymin": 21, "xmax": 80, "ymax": 60, "difficult": True},
            {"xmin": 5, "ymin": 5, "xmax": 16, "ymax": 15, "label": "paint"},
        ],
        user=inspector,
        expected_version=p1.version,
    )
    set_verdict(photo=p2, verdict="norust", user=inspector)
    save_boxes(
        photo=p3,
        boxes=[{"xmin": 3, "ymin": 7, "xmax": 33, "ymax": 47}],
        user=inspector,
        expected_version=p3.version,
    )
    add_suggestion(p3, xmin=40, ymin=1, xmax=60, ymax=20)  # not an annotation: never exported
    return [Photo.objects.get(pk=p.pk) for p in (p1, p2, p3)]
