"""Concurrent saves against a real gunicorn with several worker processes.

The web processes share the test's database (SQLite file in pass 1,
PostgreSQL in pass 2) and MEDIA_ROOT. Clients fire at the same moment with the
same `If-Match`; exactly one wins, `check_voc` finds every XML in step with
its rows, and the real `manage.py check_voc` (a separate process) exits 1 once
a file is damaged.
"""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.core.management import call_command

from inspection.models import Box, Inspection, Label, Photo, PhotoEvent
from inspection.services.photos import ingest_photo
from inspection.services.voc_files import voc_path
from ml.voc import read_voc
from tests.conftest import jpeg_bytes, make_user
from tests.integration.conftest import database_url_for_worker, wait_for

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)
REPO = Path(__file__).resolve().parents[2]
WEB_WORKERS = 3
CLIENTS = 6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(settings) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "inspection.settings",
        "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        "DATABASE_URL": database_url_for_worker(),
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "RUSTWATCH_VAR": str(Path(settings.MEDIA_ROOT).parent / "var"),
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def gunicorn(settings, tmp_path) -> Iterator[str]:
    """A gunicorn with WEB_WORKERS processes on the test's database; its base URL."""
    port = _free_port()
    log = open(tmp_path / "gunicorn.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "inspection.wsgi:application",
            "--bind", f"127.0.0.1:{port}", "--workers", str(WEB_WORKERS),
            "--timeout", "60", "--graceful-timeout", "2", "--no-control-socket", "--preload",
        ],
        cwd=REPO, env=_env(settings), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()[-3000:]
        try:  # 401: the app answers (an anonymous request touches neither DB nor broker)
            return requests.get(f"{url}/api/v1/photos/", timeout=5).status_code == 401
        except requests.RequestException:
            return False

    try:
        wait_for(up, timeout=60, what="gunicorn to answer")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture
def world(transactional_db, asset) -> dict[str, Any]:
    """People with API keys, a photo and a model suggestion on it."""
    from inspection.services.tokens import issue_token

    rust = Label.objects.get(name="rust")  # migration 0002's, kept by serialized_rollback
    ines, sam = make_user("ines", "inspector"), make_user("sam", "supervisor")
    photo = ingest_photo(
        inspection=Inspection.objects.create(asset=asset, name="race"),
        file=io.BytesIO(jpeg_bytes(300, 200)),
        filename="race.jpg",
        user=ines,
    )
    suggestion = Box.objects.create(
        photo=photo, label=rust, source="model", state="suggested", score=0.9,
        model_version="det-1", xmin=200, ymin=100, xmax=260, ymax=180,
    )  # fmt: skip
    keys = {u.username: issue_token(user=u, issued_by=u)[1] for u in (ines, sam)}
    return {"photo": photo, "suggestion": suggestion, "keys": keys}


def fire(requests_to_send: list[tuple[str, str, str, dict, dict]]) -> list[requests.Response]:
    """Send (key, method, url, json, headers) from one thread each, released together."""
    barrier = threading.Barrier(len(requests_to_send))
    out: list[Any] = [None] * len(requests_to_send)

    def send(i: int) -> None:
        key, method, url, body, headers = requests_to_send[i]
        with requests.Session() as s:
            s.headers["Authorization"] = f"Token {key}"
            barrier.wait(timeout=30)
            try:
                out[i] = s.request(method, url, json=body, headers=headers, timeout=60)
            except requests.RequestException as exc:
                out[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(out))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=90)
    assert all(isinstance(r, requests.Response) for r in out), out
    return out


def check_voc(settings, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check_voc", *args],
        cwd=REPO, env=_env(settings), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_concurrent_saves_through_gunicorn_keep_rows_and_xml_in_step(gunicorn, world, settings):
    photo, keys = world["photo"], world["keys"]
    base = f"{gunicorn}/api/v1/photos/{photo.pk}"

    def box(i: int, version: int) -> tuple:
        body = {"boxes": [{"xmin": 10 * i + 1, "ymin": 10, "xmax": 10 * i + 41, "ymax": 60}]}
        return (keys["ines"], "PUT", f"{base}/boxes/", body, {"If-Match": f'"{version}"'})

    # Round 1: the photo's first save, six inspectors at once.
    r1 = fire([box(i, 1) for i in range(CLIENTS)])
    assert sorted(r.status_code for r in r1) == [200] + [412] * (CLIENTS - 1)
    # Round 2: box saves, verdicts and a supervisor's review, all at version 2.
    mixed = [box(i, 2) for i in range(2)]
    mixed += [(keys["ines"], "PUT", f"{base}/verdict/", {"verdict": "norust"}, {"If-Match": '"2"'})]
    mixed += [(keys["ines"], "PUT", f"{base}/verdict/", {"verdict": "rust"}, {"If-Match": '"2"'})]
    review = {"box": world["suggestion"].pk, "action": "reject"}
    mixed += [(keys["sam"], "POST", f"{base}/suggestions/", review, {"If-Match": '"2"'})] * 2
    r2 = fire(mixed)
    assert sorted(r.status_code for r in r2) == [200] + [412] * (len(mixed) - 1), [
        r.text[:200] for r in r2
    ]

    p = Photo.objects.get(pk=photo.pk)
    assert p.version == 3
    events = PhotoEvent.objects.filter(photo=p).exclude(action="upload").order_by("id")
    assert [e.version for e in events] == [2, 3]
    winner = next(r for r in r2 if r.status_code == 200).json()
    for r in r1 + r2:
        if r.status_code == 412:
            assert r.json()["current"]["version"] in (2, 3)
    assert winner["version"] == 3
    rows = sorted((b.xmin, b.xmax) for b in p.boxes.filter(source="human"))
    assert len(rows) == 1  # the round-1 winner's box, or a round-2 winner's: one, never more
    on_disk = sorted((b.xmin, b.xmax) for b in read_voc(voc_path(p)).boxes)
    assert on_disk == rows

    call_command("check_voc")  # the oracle: raises (exit 1) if any XML disagrees with its rows
    voc_path(p).unlink()  # and the real command, as a separate process, says so when one does
    done = check_voc(settings)
    assert done.returncode == 1 and f"photo {p.pk}: its XML is missing" in done.stdout
