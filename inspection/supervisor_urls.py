"""Routes of the supervisor pages (review, models, training runs, overview), under the site root."""

from django.urls import path

from inspection import views_supervisor as views

urlpatterns = [
    path("review/", views.review, name="review"),
    path("review/photos/<int:pk>/", views.review_photo, name="review-photo"),
    path(
        "review/photos/<int:pk>/suggestions/<int:box>/",
        views.review_suggestion_action,
        name="review-suggestion",
    ),
    path("review/photos/<int:pk>/approve/", views.review_approve, name="review-approve"),
    path("models/", views.models, name="models"),
    path("models/<int:pk>/", views.model_version, name="model-version"),
    path("models/<int:pk>/deploy/", views.model_deploy, name="model-deploy"),
    path("models/<str:kind>/rollback/", views.model_rollback, name="model-rollback"),
    path("models/runs/start/", views.run_start, name="run-start"),
    path("models/runs/<int:pk>/", views.run_detail, name="run-detail"),
    path("models/runs/<int:pk>/cancel/", views.run_cancel, name="run-cancel"),
    path("overview/", views.overview, name="overview"),
]
