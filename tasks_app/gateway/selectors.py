"""Reads for the gateway: the caller's tasks in the mirror, Ark's filters and paging."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet, Sum
from django.utils import timezone

from ..models import AuditAction, AuditEntry, AuditResult, Task, TaskTally
from .models import ApiToken, GatewayTask
from .serializers import archived_artifacts_queryset


@dataclass(frozen=True)
class ListQuery:
    page_num: int = 1
    page_size: int = 10
    status: str | None = None
    task_ids: tuple[str, ...] = ()
    model: str | None = None
    service_tier: str | None = None


def _record_deleted() -> Exists:
    # A record deleted on purpose (from the dashboard or the gateway) answers 404 like on
    # Ark; a task that only aged out of Ark's 7-day window is still served.
    return Exists(
        AuditEntry.objects.filter(
            task_id=OuterRef("pk"), action=AuditAction.DELETE, result=AuditResult.DONE
        )
    )


def gateway_tasks(account_ids: Iterable[int]) -> QuerySet[Task]:
    return Task.objects.filter(account_id__in=sorted(account_ids)).exclude(_record_deleted())


def gateway_task(*, account_ids: Iterable[int], ark_id: str) -> Task | None:
    """One task of the caller's accounts by Ark id (newest mirror row when two accounts share it)."""
    tasks = gateway_tasks(account_ids).filter(ark_id=ark_id).select_related("account")
    return tasks.prefetch_related(Prefetch("artifacts", archived_artifacts_queryset(), to_attr="archived")).first()


def gateway_task_page(*, account_ids: Iterable[int], query: ListQuery) -> tuple[int, list[Task]]:
    """(total, tasks of the page), newest first."""
    ids = sorted(account_ids)
    tasks = gateway_tasks(ids)
    if query.status:
        tasks = tasks.filter(status=query.status)
    if query.task_ids:
        tasks = tasks.filter(ark_id__in=query.task_ids)
    if query.model:
        tasks = tasks.filter(Q(model=query.model) | Q(gateway_origin__endpoint=query.model))
    if query.service_tier:
        tasks = tasks.filter(service_tier=query.service_tier)
    total = _total(ids, query, tasks)
    start = (query.page_num - 1) * query.page_size
    if start >= total:
        return total, []
    page = list(
        tasks.order_by("-ark_created_at", "-id")
        .prefetch_related(Prefetch("artifacts", archived_artifacts_queryset(), to_attr="archived"))[
            start : start + query.page_size
        ]
    )
    return total, page


def _total(account_ids: list[int], query: ListQuery, tasks: QuerySet[Task]) -> int:
    if query.task_ids or query.model or query.service_tier:
        return tasks.count()  # a narrow filter: its index finds few rows
    # Everything, or one status: the tally (kept by triggers) instead of counting up to
    # millions of index entries, less the few records deleted on purpose.
    tally = TaskTally.objects.filter(account_id__in=account_ids)
    deleted = Task.objects.filter(account_id__in=account_ids).filter(_record_deleted())
    if query.status:
        tally = tally.filter(status=query.status)
        deleted = deleted.filter(status=query.status)
    counted = tally.aggregate(n=Sum("n"))["n"] or 0
    return max(0, counted - deleted.count())


def token_spend(token: ApiToken, *, since: datetime) -> int:
    """Tokens (Ark's usage.total_tokens) spent by tasks this token created since `since`."""
    spent = GatewayTask.objects.filter(token=token, created__gte=since).aggregate(n=Sum("task__total_tokens"))
    return int(spent["n"] or 0)


def budget_periods(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The start of today and of this month, in UTC."""
    now = (now or timezone.now()).astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day, day.replace(day=1)
