"""Rustwatch's Django project and app: photos, boxes, training runs, models."""

from inspection.celery import app as celery_app

__all__ = ["celery_app"]
