"""WSGI entry point (gunicorn inspection.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "inspection.settings")
application = get_wsgi_application()
