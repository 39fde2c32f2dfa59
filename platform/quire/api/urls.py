"""Routes of the API under /api/v1/ (namespace `api`)."""
from django.urls import include, path
from rest_framework.routers import DefaultRouter

from quire import ops

from . import registry_views, views

app_name = "api"

router = DefaultRouter(use_regex_path=False)  # ids as <int:pk>
# No `.json`-style suffix routes: `?format=` picks an export format here, and on the custom
# actions (export/, image/, cancel/, ...) a suffix reached the view as an unexpected `format`
# argument: a 500 (found by tests/security/test_object_permissions.py).
router.include_format_suffixes = False
router.register("documents", views.DocumentViewSet, basename="document")
router.register("pages", views.PageViewSet, basename="page")
router.register("jobs", views.JobViewSet, basename="job")
router.register("lines", views.LineViewSet, basename="line")
router.register("models", registry_views.ModelVersionViewSet, basename="model")
router.register("training-jobs", registry_views.TrainingJobViewSet, basename="training-job")

urlpatterns = [
    path("auth/token/", views.ObtainTokenView.as_view(), name="auth-token"),
    path("transcribe/", views.TranscribeView.as_view(), name="transcribe"),
    path("status/", ops.StatusView.as_view(), name="status"),
    path("search/", views.SearchView.as_view(), name="search"),
    path("ground-truth/import/", registry_views.GroundTruthImportView.as_view(), name="ground-truth-import"),
    path("", include(router.urls)),
]
