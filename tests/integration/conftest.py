"""Real Celery worker processes for integration tests.

A worker is started as `celery -A inspection worker` in a subprocess, on the
same database as the test (the SQLite test file, or the PostgreSQL test
database) and the same MEDIA_ROOT; the test process's Celery app is pointed at
the same broker, so what the test enqueues, that worker runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import pytest
from kombu import pools

REPO = Path(__file__).resolve().parents[2]
# A Redis database of the tests' own: flushed before and after, never the app's.
TEST_REDIS_DB = int(os.environ.get("RUSTWATCH_TEST_REDIS_DB", "15"))


def env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def database_url_for_worker() -> str:
    """A DATABASE_URL naming the database this test process uses right now."""
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{Path(s['NAME']).resolve()}"
    if connection.vendor == "postgresql":
        auth = quote(s.get("USER") or "")
        if s.get("PASSWORD"):
            auth += ":" + quote(s["PASSWORD"])
        host = s.get("HOST") or "localhost"
        port = f":{s['PORT']}" if s.get("PORT") else ""
        return f"postgres://{auth}@{host}{port}/{quote(s['NAME'])}"
    raise NotImplementedError(f"no worker DATABASE_URL for {connection.vendor}")


def test_redis_url() -> str:
    """The Redis the suite may use (host of CELERY_BROKER_URL if redis), on the test DB."""
    base = os.environ.get("CELERY_BROKER_URL", "")
    if not base.startswith(("redis://", "rediss://")):
        base = os.environ.get("RUSTWATCH_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, f"/{TEST_REDIS_DB}", "", ""))


def point_app_at(broker_url: str, transport_options: dict) -> None:
    """Make this process's Celery app publish to `broker_url` from now on.

    Celery prefers the CELERY_BROKER_URL environment variable over its config,
    so that is set too; `broker_state()` / `restore_broker()` undo it.
    """
    from inspection.celery import app

    os.environ["CELERY_BROKER_URL"] = broker_url
    app.conf.broker_url = broker_url
    app.conf.broker_transport_options = transport_options
    pools.reset()  # close and forget kombu's pooled connections to the old broker
    app._pool = None
    app.amqp._producer_pool = None


def broker_state() -> tuple[str | None, str, dict]:
    """What `restore_broker` needs to undo `point_app_at`."""
    from inspection.celery import app

    return (
        os.environ.get("CELERY_BROKER_URL"),
        app.conf.get("broker_url"),
        app.conf.broker_transport_options,
    )


def restore_broker(state: tuple[str | None, str, dict]) -> None:
    env_url, conf_url, options = state
    point_app_at(conf_url, options)
    if env_url is None:
        os.environ.pop("CELERY_BROKER_URL", None)
    else:
        os.environ["CELERY_BROKER_URL"] = env_url


@dataclass
class WorkerProcess:
    proc: subprocess.Popen
    log_path: Path

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no worker log)"


@pytest.fixture
def celery_worker_process(tmp_path, settings) -> Iterator[Callable[[str], WorkerProcess]]:
    """start(broker_url) -> a running worker process sharing DB, media and broker with the test."""

    saved = broker_state()
    started: list[WorkerProcess] = []

    def start(
        broker_url: str,
        *,
        queues: str = "default,predict",
        pool: str = "solo",
        hostname: str | None = None,
        env: dict[str, str] | None = None,
    ) -> WorkerProcess:
        var = tmp_path / "worker-var"
        options: dict = {}
        if broker_url.startswith("filesystem://"):
            broker = var / "broker"
            for sub in ("in", "processed", "control"):
                (broker / sub).mkdir(parents=True, exist_ok=True)
            # The same folders settings.py derives from RUSTWATCH_VAR in the worker.
            options = {
                "data_folder_in": str(broker / "in"),
                "data_folder_out": str(broker / "in"),
                "processed_folder": str(broker / "processed"),
                "control_folder": str(broker / "control"),
                "store_processed": False,
            }
        point_app_at(broker_url, options)
        env_extra = env or {}
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "inspection.settings",
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
            "RUSTWATCH_VAR": str(var),
            "DATABASE_URL": database_url_for_worker(),
            "CELERY_BROKER_URL": broker_url,
            "MEDIA_ROOT": str(settings.MEDIA_ROOT),
            "PYTHONUNBUFFERED": "1",
        }
        env.update(env_extra)
        env.pop("CELERY_TASK_ALWAYS_EAGER", None)
        log_path = tmp_path / f"worker-{len(started)}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [
                    sys.executable, "-m", "celery", "-A", "inspection", "worker",
                    "--queues", queues,
                    "--pool", pool, "--concurrency", "1",
                    "--hostname", hostname or f"itest-{uuid.uuid4().hex[:8]}@%h",
                    "--without-mingle", "--without-gossip", "--without-heartbeat",
                    "--loglevel", "INFO",
                ],
                cwd=REPO,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        worker = WorkerProcess(proc, log_path)
        started.append(worker)
        return worker

    yield start

    for worker in started:
        if worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGTERM)  # warm shutdown
            try:
                worker.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(worker.proc.pid, signal.SIGKILL)
                worker.proc.wait()
    restore_broker(saved)


@pytest.fixture
def redis_test_url() -> Iterator[str]:
    """The tests' own Redis database, empty; skipped without Redis unless CI=true."""
    import redis

    url = test_redis_url()
    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        if env_true("CI"):
            pytest.fail(f"Redis at {url} is required under CI=true: {exc}")
        pytest.skip(f"no Redis at {url}: {exc}")
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


def wait_for(
    predicate: Callable[[], object], *, timeout: float, interval: float = 0.25, what: str = ""
) -> object:
    """Poll `predicate` until it returns something truthy, or fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what or predicate}")
        time.sleep(interval)
