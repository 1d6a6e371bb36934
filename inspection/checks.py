"""Deploy checks of our own, run by `manage.py check --deploy` beside Django's."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register


@register(Tags.security, deploy=True)
def check_allowed_hosts(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """`*` is the embedded default's, which serves loopback only; a deployment names hosts."""
    if "*" in settings.ALLOWED_HOSTS:
        return [
            Warning(
                "ALLOWED_HOSTS accepts any host ('*'): fine for the embedded default on "
                "127.0.0.1, not for a server others reach.",
                hint="Set DJANGO_ALLOWED_HOSTS to the site's host names (comma-separated).",
                id="rustwatch.W001",
            )
        ]
    return []
