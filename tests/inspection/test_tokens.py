"""API tokens through the service: hashed, several per user, expiring, revoked by whom may."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib
import secrets
from types import SimpleNamespace

import pytest
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone
from rest_framework.test import APIClient

from inspection.errors import Conflict, DomainError, Forbidden
from inspection.models import ApiToken
from inspection.services.tokens import issue_token, revoke_token, token_list
from tests.conftest import make_user


def _status(key: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/v1/tokens/me/").status_code


@pytest.mark.django_db
def test_several_named_tokens_each_revoked_alone(integration_user, supervisor):
    a, key_a = issue_token(user=integration_user, issued_by=supervisor, name="drone 7")
    b, key_b = issue_token(user=integration_user, issued_by=supervisor)
    c, _ = issue_token(user=integration_user, issued_by=integration_user)
    assert (b.name, c.name) == ("token 1", "token 2")
    assert a.digest == hashlib.sha512(key_a.encode()).hexdigest() and key_a not in a.token_key
    assert _status(key_a) == _status(key_b) == 200
    with pytest.raises(Conflict):
        issue_token(user=integration_user, issued_by=supervisor, name="drone 7")

    revoke_token(token=a, revoked_by=integration_user)  # its owner
    assert (_status(key_a), _status(key_b)) == (401, 200)
    revoke_token(token=b, revoked_by=supervisor)  # a supervisor, anyone's
    assert _status(key_b) == 401
    assert [t.name for t in token_list(user=integration_user)] == ["token 2"]


@pytest.mark.django_db
def test_only_the_owner_or_a_supervisor_revokes(integration_user, inspector, supervisor):
    token, key = issue_token(user=integration_user, issued_by=supervisor)
    with pytest.raises(Forbidden):
        revoke_token(token=token, revoked_by=inspector)
    assert _status(key) == 200


@pytest.mark.django_db
def test_expired_tokens_stop_working_and_leave_the_list(integration_user, supervisor):
    token, key = issue_token(user=integration_user, issued_by=supervisor, expires_in_days=1)
    assert abs(token.expiry - token.created - dt.timedelta(days=1)) < dt.timedelta(minutes=1)
    ApiToken.objects.filter(pk=token.pk).update(expiry=timezone.now() - dt.timedelta(seconds=1))
    assert list(token_list()) == []
    assert _status(key) == 401
    assert not ApiToken.objects.filter(pk=token.pk).exists()  # knox deletes it


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"expires_in_days": 100_000}, "expires_in_days"),
        ({"name": "x" * 101}, "at most"),
    ],
)
def test_bad_requests_are_refused(integration_user, supervisor, kwargs, message):
    with pytest.raises(DomainError, match=message):
        issue_token(user=integration_user, issued_by=supervisor, **kwargs)
    assert not ApiToken.objects.exists()


@pytest.mark.django_db
def test_users_without_a_role_or_inactive_get_none(supervisor):
    with pytest.raises(DomainError, match="no role"):
        issue_token(user=make_user("nora", None), issued_by=supervisor)
    with pytest.raises(DomainError, match="not active"):
        issue_token(user=make_user("gone", "integration", is_active=False), issued_by=supervisor)


@pytest.mark.django_db
def test_old_drf_tokens_are_hashed_by_the_migration_and_keep_working():
    """The api_tokens migration hashes rest_framework.authtoken keys and drops the plaintext."""
    user = make_user("legacy-drone", "integration")
    key = secrets.token_hex(20)  # DRF's format: 40 hex digits
    loader = MigrationLoader(connection)
    ours = next(k for k in loader.graph.nodes if k[0] == "inspection" and "_api_tokens" in k[1])
    migration = importlib.import_module(f"inspection.migrations.{ours[1]}")
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
            "created timestamp NOT NULL, user_id integer NOT NULL)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token (key, created, user_id) VALUES (%s, %s, %s)",
            [key, timezone.now(), user.pk],
        )
    # the migration's data step; an editor that runs SQL (SQLite's refuses inside a test's
    # transaction, and the step needs nothing else of it)
    editor = SimpleNamespace(connection=connection, execute=connection.cursor().execute)
    migration.hash_drf_tokens(loader.project_state(ours).apps, editor)
    assert "authtoken_token" not in connection.introspection.table_names()
    token = ApiToken.objects.get(user=user)
    assert (token.name, token.expiry, token.token_key) == ("migrated DRF token", None, key[:15])
    assert _status(key) == 200
