"""Routes of the REST API, included by inspection/urls.py under /api/v1/.

One module per resource (catalog, photos, voc, tokens): a new resource adds
its module and its lines here. Also the OpenAPI schema and its docs pages
(assets served locally by drf-spectacular-sidecar), and a JSON 404 for any
other path under /api/v1/.
"""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from inspection.api import catalog, fallback, photos, tokens, voc

app_name = "api"

router = DefaultRouter(trailing_slash=True)
router.include_root_view = False
router.register("assets", catalog.AssetViewSet, basename="asset")
router.register("inspections", catalog.InspectionViewSet, basename="inspection")
router.register("photos", photos.PhotoViewSet, basename="photo")

urlpatterns = [
    path("import/", voc.ImportView.as_view(), name="import"),
    path("export/", voc.ExportView.as_view(), name="export"),
    path("tokens/", tokens.TokenListView.as_view(), name="token-list"),
    path("tokens/me/", tokens.OwnTokenView.as_view(), name="token-me"),
    path("tokens/<int:user_id>/", tokens.TokenDetailView.as_view(), name="token-detail"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api:schema"), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="api:schema"), name="redoc"),
    *router.urls,
    re_path(r"^.*$", fallback.NotFoundView.as_view(), name="not-found"),
]
