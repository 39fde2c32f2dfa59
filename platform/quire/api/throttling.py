"""The client address that throttles count by, behind a known number of trusted proxies.

Behind a reverse proxy every request comes from the proxy's address (REMOTE_ADDR), so counting by
REMOTE_ADDR puts all clients in one bucket. Each trusted proxy appends the address it received
the request from to X-Forwarded-For, so with N trusted proxies the N-th entry from the right is the
client as the outermost proxy saw it; entries to its left were sent by the client and are never
trusted. N is QUIRE_TRUSTED_PROXY_COUNT (settings; DRF's NUM_PROXIES is set to the same number).

Used by the web sign-in throttle (quire.web.views) and by the API throttles below, which the
REST_FRAMEWORK settings name.
"""

from django.conf import settings
from rest_framework import throttling


def client_address(request) -> str:
    """The client's address for `request` (Django HttpRequest or DRF Request) as a string.

    With QUIRE_TRUSTED_PROXY_COUNT = 0, or without X-Forwarded-For: REMOTE_ADDR. With N > 0:
    the N-th comma-separated X-Forwarded-For entry from the right, stripped of spaces; when the
    header has fewer than N entries (the request passed fewer proxies), its left-most entry, which
    a trusted proxy wrote. An empty chosen entry falls back to REMOTE_ADDR. "" when neither is
    known. The same choice as DRF's `BaseThrottle.get_ident` with NUM_PROXIES = N, except that
    DRF keeps an empty entry.
    """
    meta = request.META
    remote = meta.get("REMOTE_ADDR") or ""
    proxies = settings.QUIRE_TRUSTED_PROXY_COUNT
    forwarded = meta.get("HTTP_X_FORWARDED_FOR")
    if proxies <= 0 or not forwarded:
        return remote
    entries = forwarded.split(",")
    return entries[-min(proxies, len(entries))].strip() or remote


class _ClientAddress:
    def get_ident(self, request) -> str:
        """The address anonymous requests are counted by: `client_address`."""
        return client_address(request)


class AnonRateThrottle(_ClientAddress, throttling.AnonRateThrottle):
    """DRF's anonymous rate (`anon`), counted per `client_address`."""


class UserRateThrottle(_ClientAddress, throttling.UserRateThrottle):
    """DRF's per-user rate (`user`); anonymous requests per `client_address`."""


class ScopedRateThrottle(_ClientAddress, throttling.ScopedRateThrottle):
    """DRF's per-view scoped rates (`uploads`, `auth`); anonymous requests per `client_address`."""
