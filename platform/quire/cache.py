"""The shared cache (throttle counts of the API and of the sign-in form): Django's RedisCache
that fails open. When Redis is unreachable, reads miss and writes are dropped (with a warning)
instead of raising, so an outage of Redis lifts the throttles for a while but never turns every
API request into a 500 (uploads are still accepted during a broker outage, see
tests/reliability/test_service_outages.py). Connection and socket timeouts are short (1 s)."""
import logging

from django.core.cache.backends.redis import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)
_DOWN = (RedisConnectionError, RedisTimeoutError)


class FailOpenRedisCache(RedisCache):
    """RedisCache whose get/set/add/incr/delete/get_many/has_key/touch/clear survive an
    unreachable Redis: get → default, get_many → {}, has_key → False, set/add/touch/delete/clear
    → False or nothing, incr → ValueError (as for a missing key)."""

    def __init__(self, server, params):
        options = params.setdefault("OPTIONS", {})
        options.setdefault("socket_connect_timeout", 1)
        options.setdefault("socket_timeout", 1)
        super().__init__(server, params)

    @staticmethod
    def _warn(op: str, exc: Exception) -> None:
        log.warning("cache unavailable (%s): %s; throttle counts are skipped", op, exc)

    def get(self, key, default=None, version=None):
        try:
            return super().get(key, default, version)
        except _DOWN as exc:
            self._warn("get", exc)
            return default

    def get_many(self, keys, version=None):
        try:
            return super().get_many(keys, version)
        except _DOWN as exc:
            self._warn("get_many", exc)
            return {}

    def has_key(self, key, version=None):
        try:
            return super().has_key(key, version)
        except _DOWN as exc:
            self._warn("has_key", exc)
            return False

    def set(self, key, value, timeout=None, version=None, **kwargs):
        try:
            return super().set(key, value, timeout, version, **kwargs)
        except _DOWN as exc:
            self._warn("set", exc)
            return None

    def add(self, key, value, timeout=None, version=None):
        try:
            return super().add(key, value, timeout, version)
        except _DOWN as exc:
            self._warn("add", exc)
            return False

    def touch(self, key, timeout=None, version=None):
        try:
            return super().touch(key, timeout, version)
        except _DOWN as exc:
            self._warn("touch", exc)
            return False

    def incr(self, key, delta=1, version=None):
        try:
            return super().incr(key, delta, version)
        except _DOWN as exc:
            self._warn("incr", exc)
            raise ValueError(f"cache unavailable: {exc}") from exc

    def delete(self, key, version=None):
        try:
            return super().delete(key, version)
        except _DOWN as exc:
            self._warn("delete", exc)
            return False

    def clear(self):
        try:
            return super().clear()
        except _DOWN as exc:
            self._warn("clear", exc)
            return False
