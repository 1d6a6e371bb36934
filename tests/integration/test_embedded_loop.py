"""The whole loop on the embedded setup, with the processes `make run` starts.

`make run` ends in `manage.py run` (inspection/management/commands/run.py),
which starts gunicorn, the `default`/`predict` worker (solo pool), the `train`
worker (prefork, one child per run) and beat, and supervises them. This test
starts that same command (past the install and setup steps, which
tests/smoke/test_make_run.py covers from a fresh clone) on the test's SQLite
database and the filesystem broker, and drives tests/integration/http_loop.py
over HTTP on small synthetic photos: real processes, no eager Celery.

SQLite + filesystem broker only (CI pass 1); the production topology does the same
on PostgreSQL + Redis in tests/integration/test_topology.py.
"""

from __future__ import annotations

import os
import re
import sys

import pytest

from ml.voc import VocAnnotation, VocBox, to_xml_bytes
from tests.integration.conftest import database_url_for_worker
from tests.integration.http_loop import (
    MODEL_LOAD,
    RESCORE,
    Client,
    LoopPhotos,
    Processes,
    drive_the_loop,
    loop_env,
)
from tests.loop_photos import photo_bytes

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(
        os.environ.get("DATABASE_URL", "").startswith("postgres")
        or os.environ.get("CELERY_BROKER_URL", "").startswith("redis"),
        reason="the embedded setup is SQLite + the filesystem broker (CI pass 1)",
    ),
]

DEADLINE_S = 300
SIZE = (96, 72)


@pytest.fixture
def make_run(tmp_path, settings):
    """`manage.py run` as `make run` starts it, on this test's database and media."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CELERY_TASK_ALWAYS_EAGER"}
    }
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "inspection.settings",
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "RUSTWATCH_VAR": str(tmp_path / "var"),  # the filesystem broker lives here
            "DATABASE_URL": database_url_for_worker(),
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            **loop_env(),
        }
    )
    procs = Processes(tmp_path, env)
    argv = [sys.executable, "manage.py", "run", "--skip-setup", "--host", "127.0.0.1"]
    procs.start({"make-run": [*argv, "--port", str(procs.port)]})
    yield procs
    procs.stop()


def synthetic_photos() -> LoopPhotos:
    """10 boxed rust and 10 no-rust photos labelled, 4 of each left open (96 x 72 px).

    Eight open photos: the chance that the model's order equals the upload order is 1/8!.
    """
    photos = LoopPhotos()
    for i in range(10):
        data, (x0, y0, x1, y1) = photo_bytes("rust", 100 + i, SIZE)
        ann = VocAnnotation(f"r{i}.jpg", *SIZE, boxes=[VocBox(x0, y0, x1, y1)])
        photos.labelled[f"r{i}.jpg"] = (data, "rust", to_xml_bytes(ann))
        photos.labelled[f"n{i}.jpg"] = (photo_bytes("norust", 200 + i, SIZE)[0], "norust", None)
    for i in range(4):
        photos.unlabelled[f"open-r{i}.jpg"] = photo_bytes("rust", 300 + i, SIZE)[0]
        photos.unlabelled[f"open-n{i}.jpg"] = photo_bytes("norust", 400 + i, SIZE)[0]
    return photos


def test_the_whole_loop_over_http_on_make_run(make_run, inspector, supervisor, inspection):
    from inspection.services.tokens import issue_token

    ines = Client(make_run, issue_token(user=inspector, issued_by=supervisor)[1])
    sam = Client(make_run, issue_token(user=supervisor, issued_by=supervisor)[1])
    drive_the_loop(
        make_run,
        ines=ines,
        sam=sam,
        inspection_id=inspection.pk,
        photos=synthetic_photos(),
        deadline=DEADLINE_S,
    )
    log = make_run.log("make-run")
    lines = {name: re.findall(rf"^{name}\s*\| (.*)$", log, re.M) for name in ("worker", "train")}
    by_process = {name: "\n".join(found) for name, found in lines.items()}
    assert MODEL_LOAD.search(by_process["worker"]), log[-5000:]
    assert not MODEL_LOAD.search(by_process["train"]), by_process["train"][-5000:]
    # the first run deployed both models and re-scored once; the second deployed nothing
    assert len(RESCORE.findall(by_process["train"])) == 1, by_process["train"][-5000:]
