"""/healthz: is this Rustwatch able to work? (database, broker, media storage)

No login: load balancers, `docker compose` health checks and the smoke test ask
it. Each part is checked for real (a query, a broker round trip or writable
broker folders, a file written to and deleted from MEDIA_ROOT); the answer is
200 when all are fine and 503 naming the parts that are not.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

log = logging.getLogger(__name__)

BROKER_TIMEOUT_S = 3.0


def check_database() -> str:
    """Run a query on the default database."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return connection.vendor


def _broker_url() -> str:
    from inspection.celery import app

    return app.conf.broker_url or "amqp://"


def check_broker() -> str:
    """Reach the Celery broker: folders writable (filesystem), PING (redis), connect (other)."""
    from inspection.celery import app

    url = _broker_url()
    scheme = url.split("://", 1)[0]
    if scheme == "filesystem":
        options = app.conf.broker_transport_options or {}
        folders = {
            options.get(key)
            for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")
            if options.get(key)
        }
        if not folders:
            raise RuntimeError("filesystem broker has no data folders configured")
        for folder in sorted(folders):
            path = Path(folder)
            if not path.is_dir():
                raise RuntimeError(f"broker folder {path} does not exist")
            if not os.access(path, os.W_OK | os.X_OK):
                raise RuntimeError(f"broker folder {path} is not writable")
        return "filesystem"
    if scheme in {"redis", "rediss"}:
        import redis

        client = redis.Redis.from_url(
            url, socket_timeout=BROKER_TIMEOUT_S, socket_connect_timeout=BROKER_TIMEOUT_S
        )
        try:
            if not client.ping():
                raise RuntimeError("redis did not answer PING")
        finally:
            client.close()
        return scheme
    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_S)
    return scheme


def check_media() -> str:
    """Write and delete a probe file in the media storage."""
    name = default_storage.save(f"healthz/probe-{uuid.uuid4().hex}.txt", ContentFile(b"ok\n"))
    try:
        with default_storage.open(name) as handle:
            if handle.read() != b"ok\n":
                raise RuntimeError("probe file read back differently")
    finally:
        default_storage.delete(name)
    return str(getattr(settings, "MEDIA_ROOT", ""))


CHECKS: dict[str, Callable[[], str]] = {
    "database": check_database,
    "broker": check_broker,
    "media": check_media,
}


def run_checks() -> dict[str, dict[str, object]]:
    """Every check's result: ok, detail (or error) and how long it took."""
    results: dict[str, dict[str, object]] = {}
    for name, check in CHECKS.items():
        started = time.perf_counter()
        try:
            detail = check()
        except Exception as exc:  # a health check reports, it never raises
            log.warning("health check %s failed: %s", name, exc)
            results[name] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        else:
            results[name] = {"ok": True, "detail": detail}
        results[name]["ms"] = round((time.perf_counter() - started) * 1000, 1)
    return results


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """200 {"status": "ok", ...} when all parts work, else 503 naming the failed parts."""
    checks = run_checks()
    failed = [name for name, result in checks.items() if not result["ok"]]
    body = {"status": "fail" if failed else "ok", "failed": failed, "checks": checks}
    return JsonResponse(body, status=503 if failed else 200)
