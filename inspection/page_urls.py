"""Routes of the server pages, included by inspection/urls.py at the site root.

Photos are served by `photo_image` / `photo_thumbnail` after a login check;
there is no open media URL.
"""

from django.contrib.auth import views as auth_views
from django.urls import include, path

from inspection import views

urlpatterns = [
    # Browsers ask for /favicon.ico on pages that name no icon (the admin, the API's JSON).
    path("favicon.ico", views.favicon, name="favicon"),
    path("login/", auth_views.LoginView.as_view(template_name="login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", views.home, name="home"),
    path("assets/", views.asset_list, name="asset-list"),
    path("assets/<int:pk>/", views.asset_detail, name="asset-detail"),
    path("inspections/<int:pk>/", views.inspection_detail, name="inspection-detail"),
    path("inspections/<int:pk>/upload/", views.upload, name="inspection-upload"),
    path("photos/<int:pk>/", views.photo_detail, name="photo-detail"),
    path("photos/<int:pk>/image", views.photo_image, name="photo-image"),
    path("photos/<int:pk>/thumbnail", views.photo_thumbnail, name="photo-thumbnail"),
    path("", include("inspection.supervisor_urls")),
]
