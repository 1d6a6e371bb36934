"""API tokens through the service: a new key replaces the old, revoking twice is a no."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

from inspection.services.tokens import issue_token, revoke_token, rotate_token

pytestmark = pytest.mark.django_db


def test_issue_rotate_revoke(integration_user, supervisor):
    first = issue_token(user=integration_user, issued_by=supervisor)
    second = rotate_token(user=integration_user)
    assert second.key != first.key
    assert list(Token.objects.filter(user=integration_user).values_list("key", flat=True)) == [
        second.key
    ]
    third = issue_token(user=integration_user, issued_by=supervisor)
    assert Token.objects.get(user=integration_user).key == third.key != second.key
    assert revoke_token(user=integration_user, revoked_by=supervisor) is True
    assert revoke_token(user=integration_user, revoked_by=supervisor) is False
    assert not Token.objects.filter(user=integration_user).exists()
