"""The label trigger, checked cheaply after every label change.

Each audit row of a label change (boxes saved, verdict set, import) schedules,
on commit, one count of the labelled photos; when RUSTWATCH_TRAIN_AFTER_LABELS
new labels arrived since the last run and no run is queued, a run starts. The
beat tick `training after new labels` checks the same every few minutes.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.signals import post_save

from inspection.models import PhotoEvent

log = logging.getLogger(__name__)

LABEL_ACTIONS = {PhotoEvent.Action.BOXES, PhotoEvent.Action.VERDICT, PhotoEvent.Action.IMPORT}


def _check() -> None:
    from inspection.services.training import maybe_start_label_run

    try:
        maybe_start_label_run()
    except Exception:  # a label save never fails because of the trigger
        log.exception("label trigger check failed")


def _on_event(sender, instance: PhotoEvent, created: bool, **_kwargs) -> None:
    if created and instance.action in LABEL_ACTIONS:
        transaction.on_commit(_check)


def connect() -> None:
    post_save.connect(_on_event, sender=PhotoEvent, dispatch_uid="rustwatch-label-trigger")
