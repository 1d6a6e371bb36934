"""The supervisor pages' reads on a large data set: review queue, progress, overview.

Fills a throw-away database with N photo rows in 10 inspections (no files): 30 %
with an open model suggestion, 60 % edited by an inspector, a third of those
reviewed by a supervisor since; then times each read twice (the second is warm).
SQLite by default; pass a PostgreSQL URL (an empty database) to time that one.

    .venv/bin/python benchmarks/review_queue.py --photos 10000
    .venv/bin/python benchmarks/review_queue.py --photos 10000 \\
        --database postgres://postgres@127.0.0.1:5432/rustwatch_bench
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path


def setup_django(var: Path, database: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ.update({"RUSTWATCH_VAR": str(var), "DJANGO_SETTINGS_MODULE": "inspection.settings"})
    os.environ.pop("DATABASE_URL", None)
    if database:
        os.environ["DATABASE_URL"] = database
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def fill(n: int) -> None:
    from django.contrib.auth.models import Group, User

    from inspection.models import Asset, Box, Inspection, Label, Photo, PhotoEvent

    if Photo.objects.exists():
        raise SystemExit("The database already holds photos: give an empty one.")
    ines = User.objects.create(username="ines")
    ines.groups.add(Group.objects.get(name="inspector"))
    sam = User.objects.create(username="sam")
    sam.groups.add(Group.objects.get(name="supervisor"))
    rust = Label.objects.get(name="rust")
    asset = Asset.objects.create(name="Hull 7")
    inspections = [Inspection.objects.create(asset=asset, name=f"survey {k}") for k in range(10)]
    photos = Photo.objects.bulk_create(
        Photo(
            inspection=inspections[i % 10],
            image=f"photos/{i}.jpg",
            sha256=f"{i:064x}",
            phash="0" * 16,
            width=640,
            height=480,
            content_type="image/jpeg",
            uploaded_by=ines,
        )
        for i in range(n)
    )
    rng = random.Random(0)
    events, boxes = [], []
    for p in photos:
        r = rng.random()
        if r < 0.3:
            boxes.append(
                Box(photo=p, label=rust, xmin=1, ymin=1, xmax=9, ymax=9, source="model",
                    state="suggested", score=rng.random(), model_version="detector-1")
            )  # fmt: skip
        if r < 0.6:
            events.append(PhotoEvent(photo=p, action="boxes", actor=ines, version=2))
        if 0.4 < r < 0.6:
            events.append(PhotoEvent(photo=p, action="verdict", actor=sam, version=3))
    Box.objects.bulk_create(boxes, batch_size=2000)
    PhotoEvent.objects.bulk_create(events, batch_size=2000)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=10_000)
    ap.add_argument("--database", default="", help="a database URL (default: a new SQLite)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="rustwatch-review-bench-") as var:
        setup_django(Path(var), args.database)
        fill(args.photos)
        from django.db import connection

        from inspection import selectors_supervisor as sup

        first = sup.review_queue().ids
        reads = [
            ("review queue + first 200 photos", lambda: sup.review_queue().page(200)),
            (
                "review queue of one inspection",
                lambda: sup.review_queue(sup.ReviewFilters(inspection_id=1)).page(200),
            ),  # fmt: skip
            ("review progress per inspection", sup.review_progress),
            (
                "a photo's place in the queue",
                lambda: sup.review_neighbours(first[len(first) // 2], sup.review_queue()),
            ),  # fmt: skip
            ("overview: labelled / suggested", sup.label_counts),
            ("overview: rust per inspection", sup.rust_by_inspection),
        ]
        print(f"{connection.vendor}, {args.photos} photos, {len(first)} to review\n")
        print("| read | cold ms | warm ms |\n| --- | ---: | ---: |")
        for name, read in reads:
            times = []
            for _ in range(2):
                t = time.perf_counter()
                read()
                times.append(1000 * (time.perf_counter() - t))
            print(f"| {name} | {times[0]:.0f} | {times[1]:.0f} |")
        print("\n" + " ".join([".venv/bin/python", *sys.argv]))


if __name__ == "__main__":
    main()
