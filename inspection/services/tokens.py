"""API tokens (django-rest-knox, model inspection.ApiToken): issue, list, revoke.

Only a token's SHA-512 digest is stored; its key exists once, in the answer to
the call that made it. A user may hold several named tokens, each with an
expiry (an expired token is refused and deleted by knox). Who may revoke
which token is decided here, so every path (API, admin, commands) obeys it.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from inspection.errors import Conflict, DomainError, Forbidden
from inspection.models import ApiToken, Role
from inspection.roles import has_role, user_role
from inspection.services.history import actor_or_none

log = logging.getLogger(__name__)

NAME_MAX = 100


def token_list(*, user: AbstractBaseUser | None = None) -> QuerySet[ApiToken]:
    """Tokens that still work (not expired), of one user or of everyone."""
    tokens = ApiToken.objects.filter(Q(expiry__isnull=True) | Q(expiry__gt=timezone.now()))
    if user is not None:
        tokens = tokens.filter(user=user)
    return tokens.select_related("user", "issued_by").order_by("user__username", "-created", "-id")


def _free_name(user: AbstractBaseUser) -> str:
    taken = set(ApiToken.objects.filter(user=user).values_list("name", flat=True))
    return next(f"token {n}" for n in range(1, len(taken) + 2) if f"token {n}" not in taken)


def check_token_request(
    *, user: AbstractBaseUser, name: str | None, expires_in_days: int | None
) -> tuple[str, int]:
    """The name and lifetime a new token of `user` gets; DomainError (4xx) if it may not."""
    if user_role(user) is None:
        raise DomainError(
            f"{user.get_username()} has no role; add them to a group first.", field="username"
        )
    if not user.is_active:
        raise DomainError(f"{user.get_username()} is not active.", field="username")
    days = settings.RUSTWATCH_TOKEN_DAYS if expires_in_days is None else expires_in_days
    if not 1 <= days <= settings.RUSTWATCH_TOKEN_MAX_DAYS:
        raise DomainError(
            f"expires_in_days must be 1 to {settings.RUSTWATCH_TOKEN_MAX_DAYS}; got {days}.",
            field="expires_in_days",
        )
    name = (name or "").strip() or _free_name(user)
    if len(name) > NAME_MAX:
        raise DomainError(f"A token name has at most {NAME_MAX} characters.", field="name")
    if ApiToken.objects.filter(user=user, name=name).exists():
        raise _name_taken(user, name)
    return name, days


def _name_taken(user: AbstractBaseUser, name: str) -> Conflict:
    return Conflict(
        f"{user.get_username()} already has a token named {name!r}; revoke it or pick "
        "another name.",
        field="name",
    )


def issue_token(
    *,
    user: AbstractBaseUser,
    issued_by: AbstractBaseUser,
    name: str | None = None,
    expires_in_days: int | None = None,
) -> tuple[ApiToken, str]:
    """A new token for `user` (an integration, or oneself); returns it and its key.

    The key is not stored: show it now or never. The user's other tokens keep
    working. A name the user already uses is a 409; no role or inactive a 400.
    """
    name, days = check_token_request(user=user, name=name, expires_in_days=expires_in_days)
    try:
        with transaction.atomic():
            token, key = ApiToken.objects.create(
                user=user,
                expiry=dt.timedelta(days=days),
                name=name,
                issued_by=actor_or_none(issued_by),
            )
    except IntegrityError as exc:  # the same name, made at the same moment
        raise _name_taken(user, name) from exc
    log.info(
        "API token %r (%s) for %s issued by %s, expires %s",
        name,
        token.token_key,
        user.get_username(),
        issued_by.get_username(),
        token.expiry,
    )
    return token, key


def revoke_token(*, token: ApiToken, revoked_by: AbstractBaseUser) -> None:
    """Delete one token: its owner may, and a supervisor may revoke anyone's."""
    if token.user_id != revoked_by.pk and not has_role(revoked_by, Role.SUPERVISOR):
        raise Forbidden("Only the token's owner or a supervisor may revoke it.")
    token.delete()
    log.info(
        "API token %r (%s) of user %s revoked by %s",
        token.name,
        token.token_key,
        token.user_id,
        revoked_by.get_username(),
    )
