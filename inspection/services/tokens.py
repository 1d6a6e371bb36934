"""API tokens (DRF authtoken): issue, rotate and revoke.

A token is an API credential, not an inspection record, but it is still a
write: it happens here so that the API views stay thin and never touch the
Token table themselves.
"""

from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from rest_framework.authtoken.models import Token

log = logging.getLogger(__name__)


def _replace_token(user: AbstractBaseUser) -> Token:
    with transaction.atomic():
        Token.objects.filter(user=user).delete()
        return Token.objects.create(user=user)


def issue_token(*, user: AbstractBaseUser, issued_by: AbstractBaseUser) -> Token:
    """Give `user` a fresh token (a supervisor for an integration); an old one stops at once."""
    token = _replace_token(user)
    log.info("API token for %s issued by %s", user.get_username(), issued_by.get_username())
    return token


def rotate_token(*, user: AbstractBaseUser) -> Token:
    """Replace the user's own token with a new key (or make their first); the old key dies."""
    token = _replace_token(user)
    log.info("API token of %s rotated by its owner", user.get_username())
    return token


def revoke_token(*, user: AbstractBaseUser, revoked_by: AbstractBaseUser) -> bool:
    """Delete the user's token; False if they had none."""
    deleted, _ = Token.objects.filter(user=user).delete()
    if deleted:
        log.info("API token of %s revoked by %s", user.get_username(), revoked_by.get_username())
    return bool(deleted)
