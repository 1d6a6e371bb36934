"""Create the first administrator when the database has none.

`make run` calls this on every start; it does nothing once a superuser exists.
The credentials come from RUSTWATCH_ADMIN_USER / RUSTWATCH_ADMIN_PASSWORD, or a
random password is generated and printed once (it is not stored anywhere else).
"""

from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from inspection.models import Role


class Command(BaseCommand):
    help = "Create a first admin (superuser + supervisor) if no superuser exists yet."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--username",
            default=os.environ.get("RUSTWATCH_ADMIN_USER", "admin"),
            help="default: $RUSTWATCH_ADMIN_USER or 'admin'",
        )
        parser.add_argument(
            "--email", default=os.environ.get("RUSTWATCH_ADMIN_EMAIL", ""), help="optional"
        )

    def handle(self, *args, username: str, email: str, **options) -> None:
        User = get_user_model()
        if User.objects.filter(is_superuser=True).exists():
            self.stdout.write("An admin exists already; not creating one.")
            return
        username = username.strip()
        if not username:
            raise CommandError("RUSTWATCH_ADMIN_USER / --username must not be empty")
        if User.objects.filter(username=username).exists():
            raise CommandError(
                f"user {username!r} exists but is not a superuser; choose another "
                "RUSTWATCH_ADMIN_USER or run `manage.py createsuperuser`"
            )
        password = os.environ.get("RUSTWATCH_ADMIN_PASSWORD", "")
        generated = not password
        if generated:
            password = secrets.token_urlsafe(12)
        with transaction.atomic():
            user = User.objects.create_superuser(username=username, email=email, password=password)
            group, _ = Group.objects.get_or_create(name=Role.SUPERVISOR.value)
            user.groups.add(group)
        if generated:
            line = f"Created admin {username!r} with password {password!r} (shown only once)."
        else:
            line = f"Created admin {username!r} with the password from RUSTWATCH_ADMIN_PASSWORD."
        self.stdout.write(self.style.SUCCESS(line))
