"""API errors: every 4xx/5xx answer is JSON with a human-readable `detail` string.

DRF's validation errors are field → messages maps; they are flattened into one `detail`
sentence (and kept whole under `errors`) so clients always find the message in the same place.
"""
import logging

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404, JsonResponse
from django.views import defaults
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


def _missing_object(exc, context) -> str | None:
    """`get_object_or_404`'s "No TranscriptionJob matches the given query." in the API's words.

    Returns e.g. "not found: this transcription job does not exist or is not yours" (the same
    words whether it is missing or someone else's, so a 404 leaks nothing), or None when `exc`
    is not that default message: a view's own Http404 message is kept as it is.
    """
    if not isinstance(exc, Http404) or not str(exc).endswith("matches the given query."):
        return None
    try:
        model = context["view"].get_queryset().model
    except (KeyError, AttributeError, AssertionError):  # no view, or not a generic one: DRF's message
        return None
    return f"not found: this {model._meta.verbose_name} does not exist or is not yours"


def exception_handler(exc, context):
    """DRF exception handler answering `{"detail": "...", ["errors": {...}]}`."""
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    missing = _missing_object(exc, context)
    if missing:
        response.data = {"detail": missing}
    data = response.data
    if isinstance(data, dict) and set(data) == {"detail"}:
        response.data = {"detail": str(data["detail"])}
    else:
        response.data = {"detail": "; ".join(_flatten(data)) or "invalid request", "errors": data}
    if response.status_code >= status.HTTP_500_INTERNAL_SERVER_ERROR:
        log.error("API error %s: %s", response.status_code, response.data["detail"])
    return response


API_PREFIX = "/api/"


def _is_api(request) -> bool:
    return request.path.startswith(API_PREFIX)


def _not_found(request) -> JsonResponse:
    return JsonResponse({"detail": f"not found: no API resource at {request.path}"}, status=404)


def handler404(request, exception=None):
    """`handler404` of the root URLconf: JSON under /api/ (e.g. a non-integer id), HTML elsewhere."""
    if _is_api(request):
        return _not_found(request)
    return defaults.page_not_found(request, exception)


class ApiJsonErrorsMiddleware:
    """JSON instead of HTML for errors Django raises outside DRF's views on /api/ paths:

    - an unmatched path (e.g. `/api/v1/pages/abc/`): DEBUG answers its technical 404 page
      without calling `handler404`, so an HTML 404 there is replaced by the JSON one;
    - a body over DATA_UPLOAD_MAX_MEMORY_SIZE (RequestDataTooBig → 413) or over the field/file
      count limits (→ 400), raised when a view first reads the body.
    Put it last in MIDDLEWARE (innermost), so it sees the view's exception first.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (response.status_code == 404 and _is_api(request)
                and response.get("Content-Type", "").startswith("text/html")):
            return _not_found(request)
        return response

    def process_exception(self, request, exception):
        if not _is_api(request):
            return None
        if isinstance(exception, RequestDataTooBig):
            from django.conf import settings

            return JsonResponse({"detail": "request body too large: at most "
                                           f"{settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes outside uploaded files"},
                                status=413)
        if isinstance(exception, (TooManyFieldsSent, TooManyFilesSent)):
            return JsonResponse({"detail": f"bad request: {exception}"}, status=400)
        return None
