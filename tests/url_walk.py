"""Every URL pattern of the project, from the resolver, turned into URLs a test can request.

A new view is walked by the access tests without anyone remembering to add it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from django.urls import URLPattern, URLResolver, get_resolver

_PARAM = re.compile(r"<(?:[^:>]+:)?(?P<name>[^>]+)>|\(\?P<(?P<regex_name>[^>]+)>[^)]*\)")


@dataclass(frozen=True)
class Route:
    route: str  # the pattern as written, e.g. "tasks/<int:pk>/cancel/"
    name: str | None  # "tasks_app:task_cancel"; None for unnamed patterns
    params: tuple[str, ...]

    def url(self, value_for: Callable[[Route, str], str]) -> str:
        def replace(match: re.Match) -> str:
            return value_for(self, match["name"] or match["regex_name"])

        return "/" + _PARAM.sub(replace, self.route).replace("^", "").replace("$", "")


def all_routes() -> list[Route]:
    return list(_walk(get_resolver().url_patterns, "", None))


def _walk(patterns, prefix: str, namespace: str | None) -> Iterator[Route]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = namespace
            if pattern.namespace:
                inner = f"{namespace}:{pattern.namespace}" if namespace else pattern.namespace
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name
            yield Route(prefix + str(pattern.pattern), name, tuple(pattern.pattern.regex.groupindex))
