"""`manage.py run` (what `make run` starts) keeps web, worker and beat together.

SIGTERM to the supervisor alone (as `docker stop` or systemd send it) stops all
three; and when one of them dies on its own (here: the web port is taken) the
others are stopped too and the command fails, instead of running half a system.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.smoke.conftest import free_port, poll, processes_with_env

REPO = Path(__file__).resolve().parents[2]
HTTP_TIMEOUT_S = 60  # one request; the machine may be busy with other tests


def start_run(tmp_path: Path, port: int) -> tuple[subprocess.Popen, Path, Path]:
    var = tmp_path / "var"
    log_path = tmp_path / "run.log"
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "MEDIA_ROOT", "STATIC_ROOT"}
    }
    env.update(RUSTWATCH_VAR=str(var), PORT=str(port), WEB_CONCURRENCY="1")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "run", "--shutdown-timeout", "20"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return proc, var, log_path


def cleanup(proc: subprocess.Popen, marker: str) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for pid in processes_with_env(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_sigterm_to_the_supervisor_stops_web_worker_and_beat(tmp_path):
    port = free_port()
    proc, var, log_path = start_run(tmp_path, port)
    marker = f"RUSTWATCH_VAR={var}"
    try:

        def all_up():
            if proc.poll() is not None:
                pytest.fail(f"run exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                ok = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=HTTP_TIMEOUT_S).ok
            except requests.RequestException:  # not up yet, or busy starting
                return False
            cmds = " ".join(processes_with_env(marker).values())
            return ok and "inspection worker" in cmds and "inspection beat" in cmds

        poll(all_up, timeout=180, what="web, worker and beat to be up")
        children = set(processes_with_env(marker)) - {proc.pid}
        assert len(children) >= 4  # gunicorn master + its worker, two celery workers, beat

        proc.send_signal(signal.SIGTERM)  # to the supervisor only, not its children
        assert proc.wait(timeout=60) == 0, log_path.read_text()[-4000:]
        poll(lambda: not processes_with_env(marker), timeout=30, what="all children to exit")
        log = log_path.read_text()
        assert "Got SIGTERM; stopping web, worker, train and beat." in log
    finally:
        cleanup(proc, marker)


def test_when_web_cannot_start_the_others_are_stopped_and_run_fails(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc, var, log_path = start_run(tmp_path, port)
        marker = f"RUSTWATCH_VAR={var}"
        try:
            try:
                code = proc.wait(timeout=180)
            except subprocess.TimeoutExpired:
                pytest.fail(f"run kept going without web:\n{log_path.read_text()[-4000:]}")
            log = log_path.read_text()
            assert code != 0, log[-4000:]
            assert "web exited with code" in log, log[-4000:]
            poll(lambda: not processes_with_env(marker), timeout=30, what="all children to exit")
        finally:
            cleanup(proc, marker)
