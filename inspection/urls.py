"""URL map: admin, /healthz, the API under /api/v1/, and the pages.

Photos are served only behind login (the API's and the pages' own views), never
as open /media/ files.
"""

from importlib.util import find_spec

from django.contrib import admin
from django.urls import include, path

from inspection.health import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("api/v1/", include("inspection.api.urls")),
]

# TODO(infra): include unconditionally once inspection/page_urls.py is on main.
if find_spec("inspection.page_urls") is not None:
    urlpatterns.append(path("", include("inspection.page_urls")))
