"""The nightly training run and the label-trigger tick as django-celery-beat tasks.

Created once here (editable, and can be disabled, in the admin under Periodic
tasks); the schedule comes from RUSTWATCH_NIGHTLY_CRON at the time of migrating.
"""

from django.conf import settings
from django.db import migrations

NIGHTLY = "nightly training"
LABELS = "training after new labels"


def create(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    minute, hour, day_of_month, month_of_year, day_of_week = settings.RUSTWATCH_NIGHTLY_CRON.split()
    cron, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
        timezone=settings.TIME_ZONE,
    )
    PeriodicTask.objects.get_or_create(
        name=NIGHTLY,
        defaults={"task": "inspection.tasks.training.nightly_run", "crontab": cron},
    )
    every, _ = IntervalSchedule.objects.get_or_create(every=5, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=LABELS,
        defaults={"task": "inspection.tasks.training.check_label_trigger", "interval": every},
    )


def remove(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[NIGHTLY, LABELS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("inspection", "0005_serving"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
