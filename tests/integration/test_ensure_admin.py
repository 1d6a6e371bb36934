"""`manage.py ensure_admin`: the first admin of a fresh install, created once."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db


def run(**env_and_opts) -> str:
    out = StringIO()
    call_command("ensure_admin", stdout=out, **env_and_opts)
    return out.getvalue()


def test_creates_a_superuser_supervisor_from_the_environment(monkeypatch):
    monkeypatch.setenv("RUSTWATCH_ADMIN_PASSWORD", "correct-horse-battery")
    output = run(username="chief")
    user = User.objects.get(username="chief")
    assert user.is_superuser and user.is_staff
    assert user.check_password("correct-horse-battery")
    assert list(user.groups.values_list("name", flat=True)) == ["supervisor"]
    assert "correct-horse-battery" not in output  # a given password is not echoed


def test_generated_password_is_printed_once_and_works(monkeypatch):
    monkeypatch.delenv("RUSTWATCH_ADMIN_PASSWORD", raising=False)
    output = run(username="admin")
    password = output.split("with password '", 1)[1].split("'", 1)[0]
    assert len(password) >= 12
    assert User.objects.get(username="admin").check_password(password)
    second = run(username="admin")
    assert "exists already" in second and password not in second
    assert User.objects.filter(is_superuser=True).count() == 1


def test_nothing_happens_when_a_superuser_exists(monkeypatch):
    User.objects.create_superuser("root", password="x-long-password")
    monkeypatch.setenv("RUSTWATCH_ADMIN_PASSWORD", "other-password")
    assert "exists already" in run(username="admin")
    assert not User.objects.filter(username="admin").exists()


def test_a_taken_non_admin_username_is_a_clear_error(monkeypatch, inspector):
    monkeypatch.setenv("RUSTWATCH_ADMIN_PASSWORD", "pw-long-enough")
    with pytest.raises(CommandError, match="exists but is not a superuser"):
        run(username=inspector.username)
    assert not User.objects.filter(is_superuser=True).exists()
