"""/healthz answers for the real database, broker and media storage, without login."""

from __future__ import annotations

import os
import stat

import pytest

from tests.integration.conftest import broker_state, point_app_at, restore_broker

pytestmark = pytest.mark.django_db


@pytest.fixture
def keep_broker():
    saved = broker_state()
    yield
    restore_broker(saved)


def test_healthz_ok_without_login(client):
    response = client.get("/healthz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["failed"] == []
    assert set(body["checks"]) == {"database", "broker", "media"}
    assert all(check["ok"] for check in body["checks"].values())


def test_healthz_leaves_no_probe_file(client, settings):
    assert client.get("/healthz").status_code == 200
    leftovers = [p for p in settings.MEDIA_ROOT.rglob("*") if p.is_file()]
    assert leftovers == []


def test_healthz_503_when_media_storage_is_not_writable(client, settings, tmp_path):
    if os.geteuid() == 0:
        # root writes through permissions: make MEDIA_ROOT a file instead
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("x")
        settings.MEDIA_ROOT = blocker
    else:
        settings.MEDIA_ROOT.mkdir(parents=True, exist_ok=True)
        settings.MEDIA_ROOT.chmod(stat.S_IRUSR | stat.S_IXUSR)
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "fail"
    assert body["failed"] == ["media"]
    assert body["checks"]["media"]["error"]


def test_healthz_503_when_filesystem_broker_folder_is_missing(client, tmp_path, keep_broker):
    missing = tmp_path / "gone" / "in"
    point_app_at(
        "filesystem://",
        {"data_folder_in": str(missing), "data_folder_out": str(missing)},
    )
    body = client.get("/healthz").json()
    assert body["failed"] == ["broker"]
    assert str(missing) in body["checks"]["broker"]["error"]


def test_healthz_503_when_redis_does_not_answer(client, keep_broker):
    import socket

    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    point_app_at(f"redis://127.0.0.1:{port}/0", {})
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["broker"]


def test_healthz_redis_ping(client, redis_test_url, keep_broker):
    point_app_at(redis_test_url, {})
    body = client.get("/healthz").json()
    assert body["checks"]["broker"] == {**body["checks"]["broker"], "ok": True, "detail": "redis"}


def test_healthz_refuses_post(client):
    assert client.post("/healthz").status_code == 405
