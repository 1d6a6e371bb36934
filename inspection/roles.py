"""Who may do what: three roles, kept as Django groups.

- integration: upload photos and read (drones, robots, IoT lines; token auth)
- inspector: everything an integration may, plus label (boxes, verdicts), import
- supervisor: everything (review suggestions, export, tokens, training, deploy)
A superuser counts as a supervisor.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from inspection.models import Role

_RANK = {Role.INTEGRATION: 1, Role.INSPECTOR: 2, Role.SUPERVISOR: 3}


def user_role(user: AbstractBaseUser | AnonymousUser | None) -> Role | None:
    """The highest role the user holds, or None (anonymous or no group)."""
    if user is None or not user.is_authenticated:
        return None
    if user.is_superuser:
        return Role.SUPERVISOR
    names = set(user.groups.values_list("name", flat=True))
    held = [role for role in _RANK if role.value in names]
    return max(held, key=_RANK.__getitem__) if held else None


def has_role(user: AbstractBaseUser | AnonymousUser | None, role: Role) -> bool:
    """True if the user holds `role` or a higher one."""
    held = user_role(user)
    return held is not None and _RANK[held] >= _RANK[role]
