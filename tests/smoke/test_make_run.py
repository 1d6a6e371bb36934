"""Smoke test of the README's own command: `make run`.

It starts `make run` in its own process group on a free port with a fresh data
folder, waits for /healthz, logs in as the first admin over HTTP, uploads a
photo through the API, waits for the embedded worker to make its thumbnail,
then sends Ctrl-C (SIGINT) to the group and checks that web, worker and beat
have all exited. Every process started from it carries RUSTWATCH_VAR=<the
fresh folder> in its environment; that is how leftovers are found.
"""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import jpeg_bytes
from tests.smoke.conftest import free_port, poll, processes_with_env

REPO = Path(__file__).resolve().parents[2]
HTTP_TIMEOUT_S = 60  # one request; the machine may be busy with other tests
START_DEADLINE_S = 180
THUMBNAIL_DEADLINE_S = 90
STOP_DEADLINE_S = 60
ADMIN_USER = "smoke-admin"
ADMIN_PASSWORD = "smoke-Passw0rd-not-secret"


class MakeRun:
    """`make run` in the background, in its own session and process group."""

    def __init__(self, var: Path, port: int, log_path: Path) -> None:
        self.var, self.port, self.log_path = var, port, log_path
        self.base = f"http://127.0.0.1:{port}"
        env = {
            k: v
            for k, v in os.environ.items()
            # the embedded default: SQLite and the filesystem broker under RUSTWATCH_VAR
            if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "MEDIA_ROOT",
                         "STATIC_ROOT", "DJANGO_SETTINGS_MODULE", "CELERY_TASK_ALWAYS_EAGER",
                         "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}
        }  # fmt: skip
        env.update(
            RUSTWATCH_VAR=str(var),
            PORT=str(port),
            HOST="127.0.0.1",
            WEB_CONCURRENCY="1",
            RUSTWATCH_ADMIN_USER=ADMIN_USER,
            RUSTWATCH_ADMIN_PASSWORD=ADMIN_PASSWORD,
        )
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            ["make", "--no-print-directory", "-C", str(REPO), "run"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own session + process group, like a terminal job
        )

    def log(self, chars: int = 6000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            pytest.fail(f"make run exited early with {self.proc.returncode}:\n{self.log()}")

    def stop(self) -> None:
        """Last-resort cleanup: kill whatever is left (the test asserts before this)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        for pid in processes_with_env(f"RUSTWATCH_VAR={self.var}"):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._log.close()


@pytest.fixture
def make_run(tmp_path) -> Iterator[MakeRun]:
    if not (REPO / ".venv" / "bin" / "python").exists():
        pytest.skip("needs the project's .venv (make test creates it)")
    run = MakeRun(tmp_path / "var", free_port(), tmp_path / "make-run.log")
    try:
        yield run
    finally:
        run.stop()


def test_make_run_serves_uploads_thumbnails_and_stops_on_ctrl_c(make_run: MakeRun):
    base = make_run.base

    def healthy():
        try:
            response = requests.get(f"{base}/healthz", timeout=HTTP_TIMEOUT_S)
        except requests.RequestException:  # not up yet, or busy starting
            return None
        return response.json() if response.status_code == 200 else None

    health = poll(
        healthy,
        timeout=START_DEADLINE_S,
        what=f"{base}/healthz",
        alive=make_run.check_alive,
    )
    assert health["status"] == "ok"
    assert health["checks"]["database"]["detail"] == "sqlite"
    assert health["checks"]["broker"]["detail"] == "filesystem"
    assert (make_run.var / "rustwatch.sqlite3").is_file()  # the fresh data folder is used

    # Log in on the login page as the first admin `make run` created from the environment.
    session = requests.Session()
    login_page = session.get(f"{base}/login/", timeout=HTTP_TIMEOUT_S)
    assert login_page.status_code == 200
    csrf = session.cookies["csrftoken"]
    response = session.post(
        f"{base}/login/",
        data={"username": ADMIN_USER, "password": ADMIN_PASSWORD, "csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{base}/login/"},
        timeout=HTTP_TIMEOUT_S,
    )
    assert response.status_code == 200 and "sessionid" in session.cookies, response.text[:500]
    response = session.post(
        f"{base}/api/v1/tokens/me/",
        headers={"X-CSRFToken": session.cookies["csrftoken"], "Referer": f"{base}/"},
        timeout=HTTP_TIMEOUT_S,
    )
    assert response.status_code == 201, response.text
    api = requests.Session()
    api.headers["Authorization"] = f"Token {response.json()['key']}"

    # An asset, an inspection, a photo: all over HTTP, as an integration would.
    response = api.post(
        f"{base}/api/v1/assets/", json={"name": "Smoke hull"}, timeout=HTTP_TIMEOUT_S
    )
    assert response.status_code == 201, response.text
    response = api.post(
        f"{base}/api/v1/inspections/",
        json={"asset": response.json()["id"], "name": "smoke run"},
        timeout=HTTP_TIMEOUT_S,
    )
    assert response.status_code == 201, response.text
    inspection_id = response.json()["id"]
    response = api.post(
        f"{base}/api/v1/photos/upload/",
        data={"inspection": inspection_id},
        files={"files": ("hull.jpg", io.BytesIO(jpeg_bytes(900, 600)), "image/jpeg")},
        timeout=HTTP_TIMEOUT_S,
    )
    assert response.status_code == 201, response.text
    photo = response.json()["results"][0]["photo"]

    # The embedded worker makes the thumbnail; the photo detail then links it.
    def thumbnail_url():
        detail = api.get(photo["url"], timeout=HTTP_TIMEOUT_S)
        assert detail.status_code == 200, detail.text
        return detail.json()["thumbnail_url"]

    url = poll(
        thumbnail_url,
        timeout=THUMBNAIL_DEADLINE_S,
        what="the worker's thumbnail",
        alive=make_run.check_alive,
    )
    thumb = api.get(url, timeout=HTTP_TIMEOUT_S)
    assert thumb.status_code == 200
    assert thumb.headers["Content-Type"] == "image/jpeg"
    assert requests.get(url, timeout=HTTP_TIMEOUT_S).status_code in {401, 403}  # not without login

    # The three processes are running from this data folder...
    marker = f"RUSTWATCH_VAR={make_run.var}"
    running = " ".join(processes_with_env(marker).values())
    for part in ("gunicorn", "celery -A inspection worker", "celery -A inspection beat"):
        assert part in running, f"{part!r} not among: {running}"

    # ... and Ctrl-C on the job stops all of them.
    os.killpg(make_run.proc.pid, signal.SIGINT)
    try:
        make_run.proc.wait(timeout=STOP_DEADLINE_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"make run still running {STOP_DEADLINE_S} s after SIGINT:\n{make_run.log()}")
    left = poll(
        lambda: not processes_with_env(marker) or None,
        timeout=30,
        what="no process left from this run",
    )
    assert left
    log = make_run.log(20000)
    assert re.search(r"web stopped \(exit code 0\)", log), log
    assert re.search(r"worker stopped \(exit code 0\)", log), log
    assert re.search(r"train stopped \(exit code 0\)", log), log
    assert re.search(r"beat stopped \(exit code 0\)", log), log
