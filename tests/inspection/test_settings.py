"""Production settings: `check --deploy` is clean once hosts and a secret are given; the
embedded default's secret-key file is private from the start and one per data folder."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_django(tmp_path: Path, code: str, **env: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter with only these DJANGO_* settings in the environment."""
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "RUSTWATCH_", "DATABASE_URL", "CELERY_"))
    }
    full = {
        **base,
        "PYTHONPATH": str(ROOT),
        "DJANGO_SETTINGS_MODULE": "inspection.settings",
        "RUSTWATCH_VAR": str(tmp_path / "var"),
        **env,
    }
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
    )


CHECK_DEPLOY = (
    "import sys, django; django.setup(); from django.core.management import call_command; "
    "call_command('check', deploy=True, fail_level='WARNING')"
)
PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
    "DJANGO_ALLOWED_HOSTS": "rust.example.com",
}


def test_check_deploy_is_clean_in_production_and_names_what_the_default_lacks(tmp_path):
    prod = run_django(tmp_path, CHECK_DEPLOY, **PRODUCTION)
    assert prod.returncode == 0, prod.stderr
    assert "no issues" in prod.stdout

    # The embedded default (no hosts, generated key) is for loopback: the check says so.
    default = run_django(tmp_path, CHECK_DEPLOY)
    assert default.returncode != 0
    for check in ("rustwatch.W001", "security.W004", "security.W008", "security.W012"):
        assert check in default.stderr


def test_https_settings_follow_the_environment(tmp_path):
    show = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, "
        "s.SECURE_HSTS_SECONDS, getattr(s, 'SECURE_PROXY_SSL_HEADER', None), s.ALLOWED_HOSTS)"
    )
    prod = run_django(
        tmp_path, show, **PRODUCTION, DJANGO_SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto: https"
    )
    assert prod.returncode == 0, prod.stderr
    assert prod.stdout.split("(")[0].split() == ["True", "True", "True", "31536000"]
    assert "('HTTP_X_FORWARDED_PROTO', 'https')" in prod.stdout
    assert "'rust.example.com'" in prod.stdout and "'127.0.0.1'" in prod.stdout

    plain = run_django(tmp_path, show, **PRODUCTION, DJANGO_HTTPS="false")
    assert plain.stdout.split()[:5] == ["False", "False", "False", "0", "None"]

    bad = run_django(tmp_path, show, **PRODUCTION, DJANGO_SECURE_PROXY_SSL_HEADER="https")
    assert bad.returncode != 0
    assert "expected 'Header-Name: value'" in bad.stderr


@pytest.mark.django_db
def test_https_redirect_spares_the_health_check(client, settings):
    from django.test import Client

    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    fresh = Client()  # middleware reads the settings when the handler is built
    assert fresh.get("/login/").status_code == 301
    assert fresh.get("/login/", headers={"X-Forwarded-Proto": "https"}).status_code == 200
    assert fresh.get("/healthz").status_code in (200, 503)  # answered, not redirected


def test_generated_secret_key_is_private_from_the_start_and_shared(tmp_path):
    # Several processes starting at once on a fresh data folder, under a permissive umask.
    # Each records any chmod: a file made private from the start needs none afterwards.
    code = (
        "import os, sys; os.umask(0); chmods = []\n"
        "sys.addaudithook(lambda e, a: chmods.append(a) if e == 'os.chmod' else None)\n"
        "import inspection.settings as s; print(s.SECRET_KEY, len(chmods))"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SECRET_KEY"}
    env.update(PYTHONPATH=str(ROOT), RUSTWATCH_VAR=str(tmp_path / "var"))
    env.pop("DJANGO_SECRET_KEY", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert [chmods for _, chmods in outs] == ["0"] * 4
    keys = {key for key, _ in outs}
    key_file = tmp_path / "var" / "secret_key"
    assert keys == {key_file.read_text().strip()} and len(keys.pop()) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [p.name for p in key_file.parent.iterdir() if p.name.startswith(".")] == []


def test_predict_poll_interval_is_one_setting(tmp_path):
    """RUSTWATCH_PREDICT_POLL_S: how often a worker looks at the filesystem broker."""
    show = (
        "import django; django.setup(); from inspection.celery import app; "
        "print(app.conf.broker_transport_options['polling_interval'])"
    )
    default = run_django(tmp_path, show)
    assert default.returncode == 0, default.stderr
    assert default.stdout.split() == ["1.0"]
    assert run_django(tmp_path, show, RUSTWATCH_PREDICT_POLL_S="0.5").stdout.split() == ["0.5"]
    for bad in ("0", "soon", "-1"):
        out = run_django(tmp_path, show, RUSTWATCH_PREDICT_POLL_S=bad)
        assert out.returncode != 0
        assert f"RUSTWATCH_PREDICT_POLL_S={bad!r}: expected seconds" in out.stderr
