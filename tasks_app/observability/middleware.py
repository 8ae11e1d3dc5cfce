"""Counts the responses the web serves by status class (the chaos run's "HTTP 500s served")."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase

from .metrics import record_http_response


class ResponseCountingMiddleware:
    """First in MIDDLEWARE: Django turns a view's exception into a 500 before it gets here."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        record_http_response(response.status_code)
        return response
