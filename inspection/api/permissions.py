"""API permissions by role (see inspection/roles.py for what each role may do).

Anonymous requests get 401 (TokenAuthentication is the first authenticator,
so DRF sends `WWW-Authenticate: Token`); a signed-in user without the role an
action needs gets 403 with a message naming that role.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from inspection.models import Role
from inspection.roles import has_role


class _RolePermission(BasePermission):
    role: Role = Role.SUPERVISOR

    @property
    def message(self) -> str:  # type: ignore[override]
        return f"This needs the {self.role.value} role."

    def has_permission(self, request: Request, view: Any) -> bool:
        return bool(request.user and request.user.is_authenticated) and has_role(
            request.user, self.role
        )


class IsIntegration(_RolePermission):
    """Any role: integrations, inspectors and supervisors may read and upload."""

    role = Role.INTEGRATION


class IsInspector(_RolePermission):
    """Inspectors and supervisors: labelling (boxes, verdicts, import)."""

    role = Role.INSPECTOR


class IsSupervisor(_RolePermission):
    """Supervisors only: assets, export, tokens, review of others' work."""

    role = Role.SUPERVISOR
