"""The task list's query string, validated and turned into SQL once, then kept.

A list view validated ten filter fields and built three querysets before reading
anything: with the ORM's compiling, about 3 ms of Python per view, more than the
database spent answering. What that work produces depends only on the query string,
what the viewer may see (Access), the time zone (dates in the filter are the viewer's)
and the language (the error messages), so it is kept per thread under exactly those
(compiled_query.keep_per_thread) and each view only runs the SQL.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count
from django.http import HttpRequest, QueryDict
from django.utils import timezone
from django.utils.translation import get_language

from . import selectors
from .compiled_query import CompiledQuery, keep_per_thread
from .filters import TaskFilter, parse_paging
from .models import TaskStatus
from .selectors import Access


@dataclass(frozen=True)
class ListPlan:
    errors: tuple[str, ...]  # one line per rejected parameter, for the page
    selected_statuses: tuple[str, ...]
    page: int  # as asked; the page shown may be the last one
    page_size: int
    row_keys: CompiledQuery | None  # selectors.row_keys_query of the filter; None matches nothing
    count_queries: tuple[CompiledQuery, ...]  # the status counts under every filter but status
    # Queued tasks in the filter the viewer may cancel, when that is not simply the queued
    # count (a viewer of some accounts and operator of others); None otherwise.
    queued_operable: CompiledQuery | None
    # The query string without what was rejected: what links built from the page keep.
    link_params: QueryDict
    chip_hrefs: dict[str, str]  # per status: the link that toggles it

    def status_chips(self, counts: dict[str, int]) -> list[dict]:
        """One chip per status: its count under the other filters and a link toggling it."""
        return [
            {"value": value, "label": label, "count": counts[value], "selected": value in self.selected_statuses,
             "href": self.chip_hrefs[value]}
            for value, label in TaskStatus.choices
        ]  # fmt: skip

    def page_links(self, page: selectors.TaskListPage) -> dict[str, str | None]:
        def link(number: int) -> str:
            return with_params(self.link_params, page=str(number))

        return {
            "first": link(1) if page.page > 1 else None,
            "previous": link(page.page - 1) if page.has_previous else None,
            "next": link(page.page + 1) if page.has_next else None,
            "last": link(page.num_pages) if page.page < page.num_pages else None,
        }


def plan_for(request: HttpRequest, access: Access) -> ListPlan:
    key = (
        "list-plan", request.META.get("QUERY_STRING", ""), access, timezone.get_current_timezone_name(),
        get_language(),
    )  # fmt: skip
    return keep_per_thread(key, lambda: _plan(request, access))


def _plan(request: HttpRequest, access: Access) -> ListPlan:
    # tasks_visible_to reads nothing but `access` once it is given (and a superuser's flag,
    # which access.everything carries): the plan is the same for everyone with this access.
    filterset = TaskFilter(data=request.GET, queryset=selectors.tasks_visible_to(request.user, access=access))
    paging = parse_paging(request.GET)
    tally = filterset.tally_filter(account_ids=None if access.everything else access.visible_account_ids)
    selected = tuple(filterset.selected_statuses())
    queued_operable = None
    if not access.operates_all_it_sees and access.operable_account_ids and (
        not selected or TaskStatus.QUEUED in selected
    ):
        queued_operable = CompiledQuery.of(
            filterset.qs.filter(status=TaskStatus.QUEUED, account_id__in=sorted(access.operable_account_ids))
            .order_by()
            .values_list("status")
            .annotate(n=Count("*"))
        )
    rejected = (*filterset.rejected_params(), *paging.invalid)
    link_params = request.GET.copy()
    for name in rejected:
        link_params.pop(name, None)
    return ListPlan(
        errors=(*filterset.error_messages(), *paging.errors),
        selected_statuses=selected,
        page=paging.page,
        page_size=paging.page_size,
        row_keys=CompiledQuery.of(selectors.row_keys_query(filterset.qs)),
        count_queries=selectors.status_count_queries(queryset=filterset.queryset_without_status(), tally=tally),
        queued_operable=queued_operable,
        link_params=link_params,
        chip_hrefs={
            value: with_params(link_params, status=[s for s in selected if s != value] if value in selected
                               else [*selected, value], page=None)
            for value in TaskStatus.values
        },  # fmt: skip
    )


def with_params(params: QueryDict, **changes: str | list[str] | None) -> str:
    """The query string with some keys replaced (None removes the key)."""
    query = params.copy()
    for key, value in changes.items():
        if value is None:
            query.pop(key, None)
        elif isinstance(value, list):
            query.setlist(key, value)
        else:
            query[key] = value
    encoded = query.urlencode()
    return f"?{encoded}" if encoded else "?"
