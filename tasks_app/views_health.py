"""/healthz (for load balancers and docker) and /metrics (for Prometheus).

/healthz needs no login and reveals no secret: 200 when the database, the broker and
archive storage all answer, 503 otherwise, with the details as JSON. Account names and
their sync state are shown only to trusted callers (loopback not through a trusted proxy,
the metrics token, staff); anyone else sees how many accounts are syncing and how many
are failing.

/metrics is open to loopback (not through a trusted proxy) only, unless
ARKDASH_METRICS_TOKEN is set: then any client presenting `Authorization: Bearer <token>`
may scrape it, and nobody else.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from arkdash.security import is_direct_loopback

from .observability import metrics
from .observability.health import health_report


@never_cache
@require_safe
def healthz(request: HttpRequest) -> HttpResponse:
    report = health_report()
    body = report.as_json()
    if not _trusted(request):
        # Account names would tell an outsider which projects a team runs.
        body["accounts"] = {
            "total": len(report.accounts),
            "failing": sum(1 for account in report.accounts if not account["ok"]),
            "mirroring_the_same_tasks": sum(1 for account in report.accounts if account["same_tasks_as"]),
        }
        body["warnings"] = [f"{len(body['warnings'])} warning(s); details for staff, loopback or the token"] if (
            body["warnings"]
        ) else []
    return JsonResponse(body, status=200 if report.healthy else 503)


def _trusted(request: HttpRequest) -> bool:
    """Loopback without a proxy in between (probes on the host), a metrics scraper with the
    token, or a staff member. Behind a proxy on the same host every caller is loopback."""
    token = getattr(settings, "ARKDASH_METRICS_TOKEN", "")
    return (
        is_direct_loopback(request)
        or (bool(token) and _presents_token(request, token))
        or bool(getattr(request.user, "is_staff", False))
    )


def _presents_token(request: HttpRequest, token: str) -> bool:
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(presented.strip().encode(), token.encode())


def _plain(text: str, status: int) -> HttpResponse:
    return HttpResponse(text + "\n", status=status, content_type="text/plain; charset=utf-8")


@never_cache
@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    token = getattr(settings, "ARKDASH_METRICS_TOKEN", "")
    if token:
        if not _presents_token(request, token):
            response = _plain("A valid bearer token (ARKDASH_METRICS_TOKEN) is required.", 401)
            response["WWW-Authenticate"] = 'Bearer realm="arkdash-metrics"'
            return response
    elif not is_direct_loopback(request):
        return _plain(
            "Metrics are served to localhost only; set ARKDASH_METRICS_TOKEN to scrape remotely.", 403
        )
    return HttpResponse(metrics.render(), content_type=metrics.CONTENT_TYPE)
