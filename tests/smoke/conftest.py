"""Helpers for tests that start Rustwatch's own processes and watch them stop."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def processes_with_env(marker: str) -> dict[int, str]:
    """pid -> command line of every process whose environment contains `marker`."""
    found: dict[int, str] = {}
    needle = marker.encode() + b"\0"  # whole entries only: environ is NUL-separated
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes():
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue  # a zombie has exited; only its parent's wait is missing
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError):
            continue  # gone meanwhile, or not ours to read
        found[int(entry.name)] = cmd.strip()
    return found


def poll(predicate, *, timeout: float, what: str, interval: float = 0.5, alive=None):
    """Call `predicate` until it returns something truthy; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        if alive is not None:
            alive()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
