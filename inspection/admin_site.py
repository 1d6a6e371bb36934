"""The admin site: staff as in Django, and supervisors (inspection/roles.py says who)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from inspection.roles import may_use_admin


class RustwatchAdminLoginForm(AdminAuthenticationForm):
    def confirm_login_allowed(self, user) -> None:
        if not may_use_admin(user):
            raise ValidationError(
                "The admin is for supervisors. Sign in with a supervisor's account.",
                code="invalid_login",
            )


class RustwatchAdminSite(admin.AdminSite):
    site_header = "Rustwatch administration"
    site_title = "Rustwatch admin"
    index_title = "Records, people and schedules"
    login_form = RustwatchAdminLoginForm

    def has_permission(self, request: HttpRequest) -> bool:
        return may_use_admin(request.user)
