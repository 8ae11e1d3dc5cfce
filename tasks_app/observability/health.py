"""What /healthz checks: the database, the Celery broker, archive storage, and each account's sync.

The three dependencies decide the verdict (a web process that cannot reach one of them
should be taken out of rotation or restarted). An account whose sync is failing is
reported but does not fail the check: Ark being down is not fixed by restarting us.
Each check has a time limit and reports `{"ok": bool, "ms": float, "error": str}` with
errors reduced to their type and a short, secret-free message.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

CHECK_TIMEOUT_SECONDS = 5.0
PROBE_PREFIX = "healthz"
# An account whose last good sync is older than this many sync intervals is "stale".
STALE_AFTER_INTERVALS = 12
STALE_MINIMUM_SECONDS = 120.0


@dataclass
class CheckResult:
    ok: bool
    ms: float
    error: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"ok": self.ok, "ms": round(self.ms, 1)}
        if self.error:
            data["error"] = self.error
        data.update(self.detail)
        return data


def _short_error(error: BaseException) -> str:
    # The type and the first line only: connection strings and keys stay out of the answer.
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    text = f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__
    for secret in _secrets():
        if secret:
            text = text.replace(secret, "***")
    return text[:200]


def _secrets() -> list[str]:
    """Values that must never appear in the answer, even inside a driver's error text."""
    archive_options = settings.STORAGES.get("archive", {}).get("OPTIONS", {})
    values = [
        os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
        str(archive_options.get("secret_key") or ""),
        str(getattr(settings, "ARK_API_KEY", "") or ""),
        str(settings.DATABASES["default"].get("PASSWORD") or ""),
    ]
    return [value for value in values if len(value) >= 4]


def _timed(
    check: Callable[[], dict[str, Any] | None], *, timeout: float = CHECK_TIMEOUT_SECONDS
) -> CheckResult:
    """Run `check` in a helper thread so a hung dependency cannot hang the health answer."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["detail"] = check() or {}
        except BaseException as error:  # noqa: BLE001 - reported, not raised
            outcome["error"] = error

    started = time.monotonic()
    worker = threading.Thread(target=run, name="healthz-check", daemon=True)
    worker.start()
    worker.join(timeout)
    elapsed = (time.monotonic() - started) * 1000
    if worker.is_alive():
        return CheckResult(ok=False, ms=elapsed, error=f"no answer within {timeout:g}s")
    if "error" in outcome:
        return CheckResult(ok=False, ms=elapsed, error=_short_error(outcome["error"]))
    return CheckResult(ok=True, ms=elapsed, detail=outcome.get("detail", {}))


# --- the checks -----------------------------------------------------------------------------


def check_database() -> CheckResult:
    # In the request's own thread: Django's connections are per thread, and a helper
    # thread would leave a connection open behind it. The driver's timeouts bound it.
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # noqa: BLE001
        return CheckResult(ok=False, ms=(time.monotonic() - started) * 1000, error=_short_error(error))
    return CheckResult(ok=True, ms=(time.monotonic() - started) * 1000, detail={"vendor": connection.vendor})


def _broker_check() -> dict[str, Any]:
    url = settings.CELERY_BROKER_URL
    if url.startswith(("redis://", "rediss://", "unix://")):
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        try:
            if not client.ping():
                raise ConnectionError("Redis did not answer PING")
        finally:
            client.close()
        return {"kind": "redis"}
    if url.startswith("filesystem://"):
        options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {})
        folder = Path(options.get("data_folder_in") or options.get("data_folder_out") or "")
        if not folder.is_dir():
            raise FileNotFoundError(f"broker folder {folder} is missing")
        probe = folder / f".healthz-{secrets.token_hex(6)}"
        probe.write_bytes(b"ok")  # kombu reads only *.msg files: this one is invisible to it
        probe.unlink()
        return {"kind": "filesystem"}
    scheme = url.split("://", 1)[0]
    raise ValueError(f"no health check for broker scheme {scheme!r}")


def check_broker() -> CheckResult:
    return _timed(_broker_check)


def _storage_check() -> dict[str, Any]:
    from django.core.files.base import ContentFile

    from tasks_app.lib.storage import archive_storage, is_s3

    storage = archive_storage()
    payload = secrets.token_bytes(16)
    key = f"{PROBE_PREFIX}/probe-{secrets.token_hex(8)}"
    saved = storage.save(key, ContentFile(payload))
    try:
        with storage.open(saved, "rb") as probe:
            if probe.read() != payload:
                raise OSError("the probe object read back different bytes")
    finally:
        storage.delete(saved)
    return {"kind": "s3" if is_s3(storage) else "local"}


def check_storage() -> CheckResult:
    return _timed(_storage_check)


def _stale_after_seconds() -> float:
    interval = float(getattr(settings, "ARKDASH_SYNC_INTERVAL_SECONDS", 5.0))
    return max(STALE_MINIMUM_SECONDS, STALE_AFTER_INTERVALS * interval)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def accounts_sync() -> list[dict[str, Any]]:
    """Per account: when it last synced, how far behind that is, and whether it is failing."""
    from tasks_app.models import Account

    now = timezone.now()
    stale_after = _stale_after_seconds()
    rows = []
    shared: dict[int, list[str]] = {}
    for pk, other in Account.shares_tasks_with.through.objects.values_list(
        "from_account__pk", "to_account__name"
    ):
        shared.setdefault(pk, []).append(other)
    for account in Account.objects.order_by("name").values(
        "pk", "name", "last_sync_ok_at", "failing_since", "consecutive_failures"
    ):
        synced = account["last_sync_ok_at"]
        lag = (now - synced).total_seconds() if synced else None
        rows.append(
            {
                "name": account["name"],
                "last_sync_ok_at": _iso(synced),
                "lag_seconds": round(lag, 1) if lag is not None else None,
                "failing_since": _iso(account["failing_since"]),
                "consecutive_failures": account["consecutive_failures"],
                # Another Account mirrors the same Ark task ids (two keys of one Ark account).
                "same_tasks_as": sorted(shared.get(account["pk"], [])),
                "ok": synced is not None
                and lag is not None
                and lag <= stale_after
                and not account["failing_since"],
            }
        )
    return rows


@dataclass
class HealthReport:
    checks: dict[str, CheckResult]
    accounts: list[dict[str, Any]]
    archive: dict[str, Any]

    @property
    def healthy(self) -> bool:
        return all(result.ok for result in self.checks.values())

    def as_json(self) -> dict[str, Any]:
        accounts_ok = all(account["ok"] for account in self.accounts)
        status = "ok" if self.healthy and accounts_ok else ("degraded" if self.healthy else "fail")
        return {
            "status": status,
            "checks": {name: result.as_json() for name, result in self.checks.items()},
            "accounts": self.accounts,
            "warnings": _warnings(self.accounts),
            "archive": self.archive,
            "time": timezone.now().isoformat(),
        }


def _warnings(accounts: list[dict[str, Any]]) -> list[str]:
    pairs = sorted(
        {tuple(sorted((row["name"], other))) for row in accounts for other in row.get("same_tasks_as", [])}
    )
    return [f"accounts {a!r} and {b!r} mirror the same Ark tasks (keys of one Ark account?)" for a, b in pairs]


def _archive_summary() -> dict[str, Any]:
    from tasks_app.selectors import archive_health

    health = archive_health()
    return {
        "lag_seconds": round(health.lag_seconds, 1),
        "counts": health.counts,
        "next_deadline": _iso(health.next_deadline),
    }


def health_report() -> HealthReport:
    database = check_database()
    checks = {"database": database, "broker": check_broker(), "storage": check_storage()}
    accounts: list[dict[str, Any]] = []
    archive: dict[str, Any] = {}
    if database.ok:
        try:
            accounts = accounts_sync()
            archive = _archive_summary()
        except Exception as error:  # noqa: BLE001 - e.g. tables missing before migrate
            checks["database"] = CheckResult(ok=False, ms=database.ms, error=_short_error(error))
    return HealthReport(checks=checks, accounts=accounts, archive=archive)
