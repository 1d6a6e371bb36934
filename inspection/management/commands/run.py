"""Run everything Rustwatch needs on one machine, in the foreground.

`make run` ends here. It migrates, creates a first admin if none, collects the
static files, then starts four processes and watches them:

- web: gunicorn serving the Django app on $HOST:$PORT
- worker: a Celery worker for the queues default and predict (thumbnails, suggestions)
- train: a Celery worker for the queue train, one run at a time
- beat: Celery beat with django-celery-beat's DatabaseScheduler

Ctrl-C (SIGINT) or SIGTERM stops all of them: each gets SIGTERM (warm shutdown),
whatever is still alive after --shutdown-timeout seconds (or at a second Ctrl-C)
is killed, and the command exits. If one of them dies on its own the others are stopped too, so a
half-running system never goes unnoticed. Each child runs in its own session
(so a terminal's Ctrl-C reaches only this supervisor, which stops them in
order) and is told by the kernel to stop if this supervisor is killed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import IO

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask Linux to send SIGTERM to this child when the supervisor dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: the children stop when they notice, as without this


@dataclass
class Child:
    """One supervised process and the thread copying its output."""

    name: str
    argv: list[str]
    proc: subprocess.Popen | None = None
    pump: threading.Thread | None = field(default=None, repr=False)


def process_table(
    host: str, port: int, web_workers: int, worker_pool: str, worker_concurrency: int
) -> list[Child]:
    """The four processes of the embedded setup, as argv lists."""
    py = sys.executable
    return [
        Child(
            "web",
            [
                py, "-m", "gunicorn", "inspection.wsgi:application",
                "--bind", f"{host}:{port}",
                "--workers", str(web_workers),
                "--timeout", "120",
                "--graceful-timeout", "10",
                "--access-logfile", "-",
                "--no-control-socket",
            ],
        ),
        Child(
            "worker",
            [
                py, "-m", "celery", "-A", "inspection", "worker",
                "--queues", "default,predict",
                "--pool", worker_pool,
                "--concurrency", str(worker_concurrency),
                "--hostname", "rustwatch@%h",
                "--without-mingle", "--without-gossip",
                "--loglevel", "INFO",
            ],
        ),
        # Training on its own worker, one run at a time, so thumbnails and suggestions
        # keep coming while a model trains. Prefork with one child: the time limits work,
        # and a fresh child per run gives TensorFlow's memory back after each run.
        Child(
            "train",
            [
                py, "-m", "celery", "-A", "inspection", "worker",
                "--queues", "train",
                "--pool", "prefork",
                "--concurrency", "1",
                "--max-tasks-per-child", "1",
                "--prefetch-multiplier", "1",
                "--hostname", "rustwatch-train@%h",
                "--without-mingle", "--without-gossip",
                "--loglevel", "INFO",
            ],
        ),
        Child(
            "beat",
            [
                py, "-m", "celery", "-A", "inspection", "beat",
                "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
                "--pidfile=",
                "--loglevel", "INFO",
            ],
        ),
    ]  # fmt: skip


class Command(BaseCommand):
    help = "Migrate, ensure an admin, then run web + Celery workers + beat until Ctrl-C."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument(
            "--web-workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "2"))
        )
        parser.add_argument(
            "--worker-pool",
            default=os.environ.get("RUSTWATCH_WORKER_POOL", "solo"),
            choices=["solo", "threads", "prefork"],
            help="Celery pool; solo (one task at a time) suits the embedded SQLite setup",
        )
        parser.add_argument(
            "--worker-concurrency",
            type=int,
            default=int(os.environ.get("RUSTWATCH_WORKER_CONCURRENCY", "1")),
        )
        parser.add_argument("--shutdown-timeout", type=float, default=30.0)
        parser.add_argument(
            "--skip-setup", action="store_true", help="do not migrate / create admin / collect"
        )

    def handle(self, *args, **opts) -> None:
        if not 0 < opts["port"] < 65536:
            raise CommandError(f"PORT must be 1..65535, not {opts['port']}")
        if not opts["skip_setup"]:
            self._setup()
        children = process_table(
            opts["host"],
            opts["port"],
            opts["web_workers"],
            opts["worker_pool"],
            opts["worker_concurrency"],
        )
        code = self._supervise(children, opts["shutdown_timeout"], opts["host"], opts["port"])
        if code:
            raise CommandError("stopped because a process exited on its own (see above)")

    def _setup(self) -> None:
        """Bring the database and static files up to date; idempotent."""
        self.stdout.write(f"Data folder: {settings.VAR_DIR}")
        call_command("migrate", interactive=False, verbosity=1)
        call_command("ensure_admin")
        call_command("collectstatic", interactive=False, verbosity=0)

    def _supervise(self, children: list[Child], timeout: float, host: str, port: int) -> int:
        """Start the children, wait for a signal or a death, stop them all; 0 if asked to."""
        stop = threading.Event()
        self._hurry = threading.Event()  # a second Ctrl-C: kill now, do not wait
        reason: list[str] = []

        def on_signal(signum: int, _frame) -> None:
            if stop.is_set():
                self._hurry.set()
            else:
                reason.append(signal.Signals(signum).name)
            stop.set()

        previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            # Spawn all before starting any thread: preexec_fn is only safe without threads.
            for child in children:
                child.proc = subprocess.Popen(
                    child.argv,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,
                )
            for child in children:
                child.pump = threading.Thread(
                    target=self._pump, args=(child.name, child.proc.stdout), daemon=True
                )
                child.pump.start()
            pids = ", ".join(f"{c.name}={c.proc.pid}" for c in children)
            self.stdout.write(
                self.style.SUCCESS(f"Rustwatch on http://{host}:{port}/ ({pids}); Ctrl-C stops.")
            )
            died: Child | None = None
            while not stop.is_set() and died is None:
                died = next((c for c in children if c.proc.poll() is not None), None)
                stop.wait(0.2)
            if died is not None and not reason:
                self.stderr.write(
                    f"{died.name} exited with code {died.proc.returncode}; stopping the others."
                )
            else:
                names = [c.name for c in children]
                listed = ", ".join(names[:-1]) + f" and {names[-1]}"
                self.stdout.write(f"Got {reason[0]}; stopping {listed}.")
            self._stop_all(children, timeout)
            return 0 if reason else 1
        finally:
            for child in children:
                if child.proc is not None and child.proc.poll() is None:
                    self._kill_group(child)
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _pump(self, name: str, stream: IO[bytes]) -> None:
        """Copy a child's output line by line, prefixed with its name."""
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stdout.write(f"{name:<6}| {line}")
        stream.close()

    def _stop_all(self, children: list[Child], timeout: float) -> None:
        """SIGTERM every child, wait up to `timeout` s in all, then kill what is left."""
        for child in children:
            if child.proc.poll() is None:
                try:
                    child.proc.send_signal(signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for child in children:
            while child.proc.poll() is None:
                if self._hurry.is_set():
                    self.stderr.write(f"Stopping again: killing {child.name}.")
                    break
                if time.monotonic() > deadline:
                    self.stderr.write(f"{child.name} did not stop in {timeout:.0f} s; killing it.")
                    break
                self._hurry.wait(0.1)
            # Whatever the child left in its group (pool processes) goes too.
            self._kill_group(child)
            child.proc.wait()
            if child.pump is not None:
                child.pump.join(timeout=5)
            self.stdout.write(f"{child.name} stopped (exit code {child.proc.returncode}).")

    @staticmethod
    def _kill_group(child: Child) -> None:
        try:
            os.killpg(child.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
