"""The production topology, proven with processes, driven over HTTP.

gunicorn, the two workers with docker-compose.yml's queue options (`worker`:
default + predict, prefork; `worker-gpu`: train, one child per run) and beat
(django-celery-beat's DatabaseScheduler), against the real PostgreSQL and
Redis on loopback, through the API only: the whole loop of
tests/integration/http_loop.py on the seed photos.

PostgreSQL + Redis only (CI pass 2): the embedded `make run` setup does the same
loop in tests/integration/test_embedded_loop.py.
"""

from __future__ import annotations

import os
import sys
import uuid

import pytest

from tests.conftest import SEED
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

pytestmark = [
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(
        not os.environ.get("CELERY_BROKER_URL", "").startswith("redis")
        or not os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="the production topology runs on PostgreSQL + Redis (CI pass 2)",
    ),
]

DEADLINE_S = 480


def compose_commands(procs: Processes) -> dict[str, list[str]]:
    """docker-compose.yml's web, worker, worker-gpu and beat, as argv lists."""
    py, tag = sys.executable, uuid.uuid4().hex[:6]
    return {
        "web": [py, "-m", "gunicorn", "inspection.wsgi:application",
                "--bind", f"127.0.0.1:{procs.port}", "--workers", "2", "--timeout", "120"],
        "worker": [py, "-m", "celery", "-A", "inspection", "worker",
                   "--queues", "default,predict", "--concurrency", "2",
                   "--hostname", f"worker-{tag}@%h", "--loglevel", "INFO"],
        "worker-gpu": [py, "-m", "celery", "-A", "inspection", "worker",
                       "--queues", "train", "--concurrency", "1",
                       "--max-tasks-per-child", "1", "--prefetch-multiplier", "1",
                       "--hostname", f"gpu-{tag}@%h", "--loglevel", "INFO"],
        "beat": [py, "-m", "celery", "-A", "inspection", "beat", "--scheduler",
                 "django_celery_beat.schedulers:DatabaseScheduler", "--pidfile=",
                 "--schedule", str(procs.tmp / "beat-schedule"), "--loglevel", "INFO"],
    }  # fmt: skip


@pytest.fixture
def topology(tmp_path, settings, redis_test_url):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "inspection.settings",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "RUSTWATCH_VAR": str(tmp_path / "var"),
        "DATABASE_URL": database_url_for_worker(),
        "CELERY_BROKER_URL": redis_test_url,
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "RUSTWATCH_WORK_DIR": str(tmp_path / "work"),
        "RUSTWATCH_EMBEDDING_CACHE": str(tmp_path / "embeddings"),
        **loop_env(),
    }
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    procs = Processes(tmp_path, env)
    procs.start(compose_commands(procs))
    yield procs
    procs.stop()


def seed_photos() -> LoopPhotos:
    """10 boxed rust photos and 10 no-rust photos labelled; 5 rust and 3 no-rust left open."""
    if not SEED.is_dir():
        pytest.skip(f"seed photos not found at {SEED}")
    boxed = sorted((SEED / "detection" / "train").glob("*.jpg"))[:10]
    norust = sorted((SEED / "classification" / "norust").glob("*.jpg"))
    in_detection = {p.name for p in (SEED / "detection").glob("*/*.jpg")}
    rust = [p for p in sorted((SEED / "classification" / "rust").glob("*.jpg"))]
    rust = [p for p in rust if p.name not in in_detection]
    photos = LoopPhotos()
    for p in boxed:
        photos.labelled[p.name] = (p.read_bytes(), "rust", p.with_suffix(".xml").read_bytes())
    for p in norust[:10]:
        photos.labelled[p.name] = (p.read_bytes(), "norust", None)
    for p in [*rust[:5], *norust[10:13]]:
        photos.unlabelled[p.name] = p.read_bytes()
    return photos


def test_the_whole_loop_over_http_on_the_production_topology(
    topology, inspector, supervisor, inspection
):
    from inspection.services.tokens import issue_token

    ines = Client(topology, issue_token(user=inspector, issued_by=supervisor)[1])
    sam = Client(topology, issue_token(user=supervisor, issued_by=supervisor)[1])
    drive_the_loop(
        topology,
        ines=ines,
        sam=sam,
        inspection_id=inspection.pk,
        photos=seed_photos(),
        deadline=DEADLINE_S,
    )
    # The models are loaded where photos are scored, never in the training worker's children.
    assert MODEL_LOAD.search(topology.log("worker")), topology.logs()
    assert not MODEL_LOAD.search(topology.log("worker-gpu")), topology.log("worker-gpu")[-5000:]
    # The first run deployed both models and re-scored the unlabelled photos once (the
    # second run deployed nothing: held).
    assert len(RESCORE.findall(topology.log("worker-gpu"))) == 1, topology.log("worker-gpu")
