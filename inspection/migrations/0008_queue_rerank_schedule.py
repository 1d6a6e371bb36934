"""The queue re-rank as a django-celery-beat task (like 0006's training schedules).

Created once here (editable, and can be disabled, in the admin under Periodic
tasks); the interval comes from RUSTWATCH_QUEUE_RERANK_MINUTES at the time of migrating.
"""

from django.conf import settings
from django.db import migrations

RERANK = "queue re-rank"


def create(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(
        every=max(1, settings.RUSTWATCH_QUEUE_RERANK_MINUTES), period="minutes"
    )
    PeriodicTask.objects.get_or_create(
        name=RERANK,
        defaults={"task": "inspection.tasks.queue.rerank_queue_task", "interval": every},
    )


def remove(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=RERANK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("inspection", "0007_api_tokens"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
