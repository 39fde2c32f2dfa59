"""Root URL map: admin, the versioned API under /api/v1/, the OpenAPI schema and its docs pages, the
health check /healthz (quire.ops), and the web page at the site root (quire.web)."""
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

from quire import ops
from quire.api.schema import SchemaView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", ops.healthz, name="healthz"),
    path("api/v1/", include("quire.api.urls")),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
    path("", include("quire.web.urls")),
]

handler404 = "quire.api.errors.handler404"  # JSON under /api/, the web page's 404.html elsewhere
