"""Queue leases under real concurrency: a gunicorn with four worker processes, many clients.

Threads in this process and separate client processes call GET /api/v1/queue/next/
at the same moment, each with its own inspector's token: every photo goes to at
most one inspector, every inspector gets at most one photo. On the suite's
database (SQLite in WAL mode, or PostgreSQL).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import requests
from django.core.files.base import ContentFile

from inspection.models import Photo, QueueLease
from tests.conftest import jpeg_bytes, make_user
from tests.integration.conftest import REPO, database_url_for_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

CLIENT = """
import json, sys, time, requests
url, token, at = sys.argv[1], sys.argv[2], float(sys.argv[3])
time.sleep(max(0.0, at - time.time()))
r = requests.get(url, headers={"Authorization": "Token " + token}, timeout=60)
photo = r.json().get("photo")
print(json.dumps({"status": r.status_code, "photo": photo and photo["id"]}))
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gunicorn_url(tmp_path, settings):
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "inspection.settings",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "RUSTWATCH_VAR": str(tmp_path / "web-var"),
        "DATABASE_URL": database_url_for_worker(),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
    }
    log = open(tmp_path / "gunicorn.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "inspection.wsgi:application",
         "--bind", f"127.0.0.1:{port}", "--workers", "4", "--timeout", "60",
         "--graceful-timeout", "2"],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            pytest.fail((tmp_path / "gunicorn.log").read_text()[-3000:])
        try:
            return requests.get(f"{url}/healthz", timeout=2).status_code in (200, 503)
        except requests.RequestException:
            return False

    wait_for(up, timeout=90, what="gunicorn")
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)
    log.close()


def test_concurrent_clients_never_get_the_same_photo(gunicorn_url, inspection):
    from inspection.models import ApiToken
    from inspection.services.photos import ingest_photo

    for i in range(10):
        p = ingest_photo(
            inspection=inspection,
            file=ContentFile(jpeg_bytes(32, 24, color=(20 * i, 30, 60)), name=f"c{i}.jpg"),
            filename=f"c{i}.jpg",
            user=None,
        )
        Photo.objects.filter(pk=p.pk).update(queue_score=1 - i / 20, score=0.5)
    tokens = [
        ApiToken.objects.create(user=make_user(f"insp{i}", "inspector"), name="queue")[1]
        for i in range(12)
    ]
    url = f"{gunicorn_url}/api/v1/queue/next/"
    at = time.time() + 3.0  # every client fires at this moment

    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CLIENT, url, key, str(at)], stdout=subprocess.PIPE, text=True
        )
        for key in tokens[:6]
    ]
    results: dict[str, dict] = {}

    def ask(key: str) -> None:
        time.sleep(max(0.0, at - time.time()))
        r = requests.get(url, headers={"Authorization": f"Token {key}"}, timeout=60)
        photo = r.json().get("photo")
        results[key] = {"status": r.status_code, "photo": photo and photo["id"]}

    threads = [threading.Thread(target=ask, args=(key,)) for key in tokens[6:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    for key, proc in zip(tokens[:6], procs, strict=True):
        out, _ = proc.communicate(timeout=90)
        results[key] = json.loads(out.strip().splitlines()[-1])

    assert len(results) == 12
    assert all(r["status"] == 200 for r in results.values()), results
    handed = [r["photo"] for r in results.values() if r["photo"] is not None]
    assert len(handed) == len(set(handed)) == 10, results
    assert QueueLease.objects.count() == 10
    assert sorted(QueueLease.objects.values_list("photo_id", flat=True)) == sorted(handed)
