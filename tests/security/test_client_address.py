"""The client address throttles count by (quire.api.throttling.client_address), behind 0, 1 or 2
trusted proxies, the same as DRF's own choice with NUM_PROXIES, and the API's throttles using it."""
import pytest
from django.core.cache import cache
from django.test import RequestFactory
from rest_framework.test import APIClient
from rest_framework.throttling import BaseThrottle, ScopedRateThrottle

from quire.api.throttling import client_address
from tests.platform.factories import make_user

REMOTE = "10.0.0.254"
CASES = [  # (trusted proxies, X-Forwarded-For or None, client address)
    (0, None, REMOTE),
    (0, "203.0.113.7", REMOTE),  # no proxy trusted: the header is the client's own claim
    (1, None, REMOTE),
    (1, "203.0.113.7", "203.0.113.7"),
    (1, "198.51.100.99, 203.0.113.7", "203.0.113.7"),  # the left-most entry is the client's lie
    (1, "198.51.100.99,203.0.113.7 ", "203.0.113.7"),
    (2, "198.51.100.99, 203.0.113.7, 10.0.0.3", "203.0.113.7"),  # outer proxy 10.0.0.3, inner REMOTE
    (2, "203.0.113.7", "203.0.113.7"),  # fewer entries than proxies: the left-most, a proxy wrote it
    (3, "2001:db8::1, 10.0.0.2, 10.0.0.3", "2001:db8::1"),
]


def _request(forwarded: str | None):
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded is not None else {}
    return RequestFactory().get("/", REMOTE_ADDR=REMOTE, **headers)


@pytest.mark.parametrize("proxies,forwarded,expected", CASES)
def test_client_address_trusts_only_the_proxies_entries(settings, proxies, forwarded, expected):
    settings.QUIRE_TRUSTED_PROXY_COUNT = proxies
    assert client_address(_request(forwarded)) == expected


@pytest.mark.parametrize("proxies,forwarded,expected", CASES)
def test_drf_num_proxies_makes_the_same_choice(settings, proxies, forwarded, expected):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": proxies}  # DRF reloads its settings
    assert BaseThrottle().get_ident(_request(forwarded)) == expected


def test_an_empty_entry_falls_back_to_the_proxy_address(settings):
    settings.QUIRE_TRUSTED_PROXY_COUNT = 1
    assert client_address(_request("203.0.113.7, ")) == REMOTE
    assert client_address(RequestFactory().get("/", REMOTE_ADDR="")) == ""


def test_num_proxies_is_the_trusted_proxy_count():
    from django.conf import settings

    assert settings.REST_FRAMEWORK["NUM_PROXIES"] == settings.QUIRE_TRUSTED_PROXY_COUNT


@pytest.fixture
def clean_cache(db):
    cache.clear()
    yield
    cache.clear()


def test_api_token_throttle_counts_each_forwarded_client(clean_cache, settings, monkeypatch):
    """The token endpoint's `auth` rate behind one proxy: per client, not per proxy address."""
    settings.QUIRE_TRUSTED_PROXY_COUNT = 1
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {**ScopedRateThrottle.THROTTLE_RATES, "auth": "3/min"})
    make_user("alice")

    def token(forwarded: str, password: str = "guess"):
        return APIClient(REMOTE_ADDR=REMOTE, HTTP_X_FORWARDED_FOR=forwarded).post(
            "/api/v1/auth/token/", {"username": "alice", "password": password}, format="json").status_code

    assert [token("203.0.113.7") for _ in range(4)] == [400, 400, 400, 429]
    assert token("198.51.100.99, 203.0.113.7") == 429  # a forged left-most entry changes nothing
    assert token("198.51.100.2", "pw-alice-123") == 200  # another client behind the same proxy
