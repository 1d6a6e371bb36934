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


# --- what a supervisor may do in the admin ---------------------------------------
# Supervisors manage the team's records and schedules in the admin without being
# Django staff: every model of these apps (the ModelAdmins still refuse what nobody
# may do there, e.g. editing boxes), and the people: their accounts and roles
# (groups), but never a superuser's account or anyone's staff / superuser flags
# (inspection/admin.py's UserAdmin). Superusers keep Django's own rules.
SUPERVISOR_ADMIN_APPS = frozenset({"inspection", "django_celery_beat"})
SUPERVISOR_ADMIN_PERMS = frozenset(
    {"auth.view_user", "auth.add_user", "auth.change_user", "auth.view_group"}
)


def may_use_admin(user: AbstractBaseUser | AnonymousUser | None) -> bool:
    """Who the admin lets in: active staff (Django's rule) and active supervisors."""
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    return bool(user.is_staff) or has_role(user, Role.SUPERVISOR)


class SupervisorPermissionBackend:
    """Grants supervisors the admin permissions above (settings.AUTHENTICATION_BACKENDS).

    Authenticates nobody; Django asks every backend for a permission and
    ModelBackend still answers for superusers and stored permissions.
    """

    def authenticate(self, request, **credentials):
        return None

    def _supervisor(self, user) -> bool:
        return bool(user.is_active) and has_role(user, Role.SUPERVISOR)

    def has_perm(self, user, perm: str, obj=None) -> bool:
        if not self._supervisor(user):
            return False
        return perm in SUPERVISOR_ADMIN_PERMS or perm.split(".", 1)[0] in SUPERVISOR_ADMIN_APPS

    def has_module_perms(self, user, app_label: str) -> bool:
        if not self._supervisor(user):
            return False
        return app_label in SUPERVISOR_ADMIN_APPS or any(
            p.startswith(f"{app_label}.") for p in SUPERVISOR_ADMIN_PERMS
        )
