"""Every URL pattern of the project, as a concrete example path, from Django's URL resolver (so a
view added later is checked without editing the tests)."""
from __future__ import annotations

import re

from django.urls import URLPattern, URLResolver, get_resolver


def _walk(patterns, prefix: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def example_path(route: str, pk: int = 1) -> str:
    """A path that the route matches: ids become `pk`, a DRF format suffix `.json`, a regex
    alternation its first choice (Django admin's `(?P<app_label>auth|...)`)."""
    path = re.sub(r"<drf_format_suffix:\w+>", ".json", route)
    path = re.sub(r"<(int|path):\w+>", str(pk), path)
    path = re.sub(r"<(?:str:)?\w+>", "x", path)
    path = re.sub(r"\(\?P<\w+>(\w+)(?:\|[^)]*)?\)", r"\1", path)
    path = path.replace("^", "").replace("$", "").replace("\\", "")
    return "/" + path


def all_routes() -> list[tuple[str, str, object]]:
    """(route, example path, URLPattern) for every pattern, in resolver order."""
    return [(route, example_path(route), pattern) for route, pattern in _walk(get_resolver().url_patterns)]
