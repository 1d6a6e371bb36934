"""URL map: admin, /healthz, the API under /api/v1/, and the pages."""

from importlib.util import find_spec

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.static import serve

from inspection.health import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
]

# TODO(infra): make these unconditional once inspection/api/urls.py and
# inspection/page_urls.py are on main.
if find_spec("inspection.api.urls") is not None:
    urlpatterns.append(path("api/v1/", include("inspection.api.urls")))
if find_spec("inspection.page_urls") is not None:
    urlpatterns.append(path("", include("inspection.page_urls")))
else:  # until the pages serve photos behind login
    urlpatterns.append(
        path(
            f"{settings.MEDIA_URL.strip('/')}/<path:path>",
            serve,
            {"document_root": settings.MEDIA_ROOT},
        )
    )
