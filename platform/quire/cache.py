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


def _fail_open(name: str, fallback):
    """RedisCache method ``name`` that, when Redis is unreachable, logs a warning and returns
    ``fallback(exc, *args, **kwargs)`` (the call's own arguments) instead of raising."""
    method = getattr(RedisCache, name)

    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except _DOWN as exc:
            log.warning("cache unavailable (%s): %s; throttle counts are skipped", name, exc)
            return fallback(exc, *args, **kwargs)

    wrapper.__name__ = wrapper.__qualname__ = name
    wrapper.__doc__ = method.__doc__
    return wrapper


def _missing_key(exc: Exception, *args, **kwargs):
    raise ValueError(f"cache unavailable: {exc}") from exc  # what incr raises for a missing key


class FailOpenRedisCache(RedisCache):
    """RedisCache whose get/set/add/incr/delete/get_many/has_key/touch/clear survive an
    unreachable Redis: get → default, get_many → {}, has_key → False, set → None,
    add/touch/delete/clear → False, incr → ValueError (as for a missing key)."""

    def __init__(self, server, params):
        options = params.setdefault("OPTIONS", {})
        options.setdefault("socket_connect_timeout", 1)
        options.setdefault("socket_timeout", 1)
        super().__init__(server, params)

    get = _fail_open("get", lambda exc, key, default=None, version=None: default)
    get_many = _fail_open("get_many", lambda *a, **k: {})
    has_key = _fail_open("has_key", lambda *a, **k: False)
    set = _fail_open("set", lambda *a, **k: None)
    add = _fail_open("add", lambda *a, **k: False)
    touch = _fail_open("touch", lambda *a, **k: False)
    incr = _fail_open("incr", _missing_key)
    delete = _fail_open("delete", lambda *a, **k: False)
    clear = _fail_open("clear", lambda *a, **k: False)
