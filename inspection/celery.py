"""The Celery app. JSON only, ids in payloads, late acks: tasks are idempotent."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inspection.settings")

app = Celery("inspection")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
