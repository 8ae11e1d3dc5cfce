"""Reads for the gateway: the caller's tasks in the mirror, Ark's filters and paging."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Exists, OuterRef, Q, QuerySet, Sum
from django.utils import timezone

from ..models import AuditAction, AuditEntry, AuditResult, Task
from .models import ApiToken, GatewayTask
from .serializers import SERIALIZED_FIELDS


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


def gateway_tasks(account_ids: Iterable[int], *, with_deleted: bool = False) -> QuerySet[Task]:
    tasks = Task.objects.filter(account_id__in=sorted(account_ids))
    return tasks if with_deleted else tasks.exclude(_record_deleted())


def gateway_task(*, account_ids: Iterable[int], ark_id: str) -> Task | None:
    """One task of the caller's accounts by Ark id (newest mirror row when two accounts share it)."""
    return gateway_tasks(account_ids).filter(ark_id=ark_id).select_related("account").first()


def gateway_task_page(*, account_ids: Iterable[int], query: ListQuery) -> tuple[int, list[Task]]:
    """(total, tasks of the page), newest first."""
    ids = sorted(account_ids)
    tasks = gateway_tasks(ids, with_deleted=True)
    if query.status:
        tasks = tasks.filter(status=query.status)
    if query.task_ids:
        tasks = tasks.filter(ark_id__in=query.task_ids)
    # Ark's filter.model is the endpoint id a task was sent to; the mirror knows it for tasks
    # created through the gateway, and the model name for all.
    by_endpoint = bool(query.model) and GatewayTask.objects.filter(
        endpoint=query.model, task__account_id__in=ids
    ).exists()
    if by_endpoint:
        tasks = tasks.filter(Q(model=query.model) | Q(gateway_origin__endpoint=query.model))
    elif query.model:
        tasks = tasks.filter(model=query.model)
    if query.service_tier:
        tasks = tasks.filter(service_tier=query.service_tier)
    # Counted without the anti-join, less the few records deleted on purpose: a COUNT(*)
    # that an index-only scan answers, where the anti-join would read every row.
    total = tasks.count() - tasks.filter(_record_deleted()).count()
    tasks = tasks.exclude(_record_deleted())
    start = (query.page_num - 1) * query.page_size
    if start >= total:
        return total, []
    page = list(tasks.order_by("-ark_created_at", "-id").only(*SERIALIZED_FIELDS)[start : start + query.page_size])
    return total, page


def token_spend(token: ApiToken, *, since: datetime) -> int:
    """Tokens (Ark's usage.total_tokens) spent by tasks this token created since `since`."""
    spent = GatewayTask.objects.filter(token=token, created__gte=since).aggregate(n=Sum("task__total_tokens"))
    return int(spent["n"] or 0)


def budget_periods(now: datetime | None = None) -> tuple[datetime, datetime]:
    """The start of today and of this month, in UTC."""
    now = (now or timezone.now()).astimezone(UTC)
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    return day, day.replace(day=1)
