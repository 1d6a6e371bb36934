"""API tokens (DRF authtoken): issue, rotate and revoke.

Kept beside the API because a token is an API credential, not an inspection
record; the views stay thin and never write the Token table themselves.
"""

from __future__ import annotations

import logging

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from rest_framework.authtoken.models import Token

log = logging.getLogger(__name__)


def issue_token(*, user: AbstractBaseUser, issued_by: AbstractBaseUser) -> Token:
    """Give `user` a fresh token; an old one stops working at once (rotation)."""
    with transaction.atomic():
        Token.objects.filter(user=user).delete()
        token = Token.objects.create(user=user)
    log.info("API token for %s issued by %s", user.get_username(), issued_by.get_username())
    return token


def revoke_token(*, user: AbstractBaseUser, revoked_by: AbstractBaseUser) -> bool:
    """Delete the user's token; False if they had none."""
    deleted, _ = Token.objects.filter(user=user).delete()
    if deleted:
        log.info("API token of %s revoked by %s", user.get_username(), revoked_by.get_username())
    return bool(deleted)
