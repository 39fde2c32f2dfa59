"""The OpenAPI schema view, serialised per process.

drf-spectacular resolves its extensions' target classes lazily, on the first schema build, and that
step is not thread-safe: two threads building the first schema at once can make one fail with
``AttributeError: 'NoneType' object has no attribute 'startswith'`` (drf-spectacular issue #1122),
which a threaded gunicorn worker answered with a 500 on the first ``GET /api/schema/`` after
start-up. Schema requests are rare, so one lock per process costs nothing.
"""
from __future__ import annotations

import threading

from drf_spectacular.views import SCHEMA_KWARGS, SpectacularAPIView
from drf_spectacular.utils import extend_schema

_SCHEMA_LOCK = threading.Lock()


class SchemaView(SpectacularAPIView):
    """:class:`SpectacularAPIView` that builds one schema at a time in this process."""

    @extend_schema(**SCHEMA_KWARGS)  # as the parent's get: kept out of the schema (SERVE_INCLUDE_SCHEMA)
    def get(self, request, *args, **kwargs):
        with _SCHEMA_LOCK:
            return super().get(request, *args, **kwargs)
