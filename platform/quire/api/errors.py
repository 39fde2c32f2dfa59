"""API errors: every 4xx/5xx answer is JSON with a human-readable `detail` string.

DRF's validation errors are field → messages maps; they are flattened into one `detail`
sentence (and kept whole under `errors`) so clients always find the message in the same place.
"""
import logging

from rest_framework import status
from rest_framework.exceptions import APIException
from rest_framework.views import exception_handler as drf_exception_handler

log = logging.getLogger(__name__)


class ApiError(APIException):
    """An error with an explicit HTTP status and message (e.g. 413 for an over-limit upload)."""

    def __init__(self, status_code: int, detail: str, code: str = "error"):
        super().__init__(detail=detail, code=code)
        self.status_code = status_code


def _flatten(data, prefix: str = "") -> list[str]:
    if isinstance(data, dict):
        out = []
        for key, value in data.items():
            name = "" if key == "non_field_errors" else f"{prefix}{key}"
            out += _flatten(value, f"{name}." if name else "")
        return out
    if isinstance(data, list):
        return [msg for item in data for msg in _flatten(item, prefix)]
    return [f"{prefix.rstrip('.')}: {data}" if prefix else str(data)]


def exception_handler(exc, context):
    """DRF exception handler answering `{"detail": "...", ["errors": {...}]}`."""
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    data = response.data
    if isinstance(data, dict) and set(data) == {"detail"}:
        response.data = {"detail": str(data["detail"])}
    else:
        response.data = {"detail": "; ".join(_flatten(data)) or "invalid request", "errors": data}
    if response.status_code >= status.HTTP_500_INTERNAL_SERVER_ERROR:
        log.error("API error %s: %s", response.status_code, response.data["detail"])
    return response
