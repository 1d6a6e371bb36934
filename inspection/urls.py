"""URL map: admin, /healthz, the API under /api/v1/, and the pages.

Photos are served only behind login (the API's and the pages' own views), never
as open /media/ files.
"""

from django.contrib import admin
from django.urls import include, path

from inspection.health import healthz

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", healthz, name="healthz"),
    path("api/v1/", include("inspection.api.urls")),
    path("", include("inspection.page_urls")),
]
