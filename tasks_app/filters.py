"""The task list's query string: filters, sort and paging, validated like forms.

The URL is the page's state, so anything in it may be hand-edited or stale: every
value is validated and an invalid one is reported (and ignored), never a 500.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import F, QuerySet
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .models import ArchiveState, Task, TaskKind, TaskStatus
from .task_tally import TallyFilter

# Ark ids look like cgt-20250331175019-68d9t; accept the family loosely (the suffix
# format is not promised) but refuse anything that could not be an id.
TASK_ID_PATTERN = re.compile(r"^cgt-[0-9A-Za-z-]{1,60}$")
TASK_ID_SEPARATORS = re.compile(r"[\s,;]+")
# Ark's own filter.task_ids batch is 500; more than that in a box is a paste accident.
MAX_TASK_IDS = 500

PAGE_SIZES = (10, 25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50

SORTS = {
    "-created": (F("ark_created_at").desc(), F("id").desc()),
    "created": (F("ark_created_at").asc(), F("id").asc()),
    "-updated": (F("ark_updated_at").desc(nulls_last=True), F("id").desc()),
    "updated": (F("ark_updated_at").asc(nulls_last=True), F("id").asc()),
}
SORT_CHOICES = (
    ("-created", _("Newest created first")),
    ("created", _("Oldest created first")),
    ("-updated", _("Recently updated first")),
    ("updated", _("Least recently updated first")),
)


def parse_task_ids(text: str) -> list[str]:
    """Split a pasted box of ids (commas, spaces, newlines) into unique valid ids.

    Raises ValidationError naming the values that are not task ids.
    """
    seen: dict[str, None] = {}
    for token in TASK_ID_SEPARATORS.split(text or ""):
        token = token.strip().strip("'\"")
        if token:
            seen.setdefault(token, None)
    ids = list(seen)
    bad = [value for value in ids if not TASK_ID_PATTERN.match(value)]
    if bad:
        shown = ", ".join(f"“{value[:40]}”" for value in bad[:5])
        raise ValidationError(
            ngettext(
                "%(values)s is not a task id (task ids look like cgt-20250331175019-68d9t).",
                "%(values)s are not task ids (task ids look like cgt-20250331175019-68d9t).",
                len(bad),
            ),
            params={"values": shown},
            code="bad_task_id",
        )
    if len(ids) > MAX_TASK_IDS:
        raise ValidationError(
            _("Too many task ids: %(count)d (at most %(max)d at once)."),
            params={"count": len(ids), "max": MAX_TASK_IDS},
            code="too_many_ids",
        )
    return ids


class TaskIdsField(forms.CharField):
    widget = forms.Textarea

    def to_python(self, value: object) -> list[str]:  # type: ignore[override]
        return parse_task_ids(str(super().to_python(value)))


class TaskIdsFilter(django_filters.Filter):
    field_class = TaskIdsField

    def filter(self, qs: QuerySet, value: list[str]) -> QuerySet:
        return qs.filter(ark_id__in=value) if value else qs


class TaskFilterForm(forms.Form):
    def clean(self) -> dict:
        cleaned = super().clean()
        after, before = cleaned.get("created_after"), cleaned.get("created_before")
        if after and before and after >= before:
            # Drop both: applying half of an inverted range would mislead.
            del cleaned["created_after"], cleaned["created_before"]
            raise ValidationError(_("“Created from” must be earlier than “created until”."), code="bad_range")
        return cleaned


class TaskFilter(django_filters.FilterSet):
    # distinct=False: one status per row, and DISTINCT would defeat the ordered index scan.
    status = django_filters.MultipleChoiceFilter(
        label=_("Status"), choices=TaskStatus.choices, widget=forms.CheckboxSelectMultiple, distinct=False
    )
    kind = django_filters.ChoiceFilter(label=_("Kind"), choices=TaskKind.choices, empty_label=_("Any kind"))
    model = django_filters.CharFilter(label=_("Model"), field_name="model", max_length=128)
    ids = TaskIdsFilter(label=_("Task ids"), help_text=_("Separate with commas, spaces or new lines."))
    created_after = django_filters.DateTimeFilter(
        label=_("Created from"), field_name="ark_created_at", lookup_expr="gte",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    created_before = django_filters.DateTimeFilter(
        label=_("Created until"), field_name="ark_created_at", lookup_expr="lt",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    archive = django_filters.ChoiceFilter(
        label=_("Archive"), field_name="archive_state", choices=ArchiveState.choices, empty_label=_("Any state")
    )
    sort = django_filters.ChoiceFilter(
        label=_("Sort"), choices=SORT_CHOICES, method="order_by_choice", empty_label=None
    )

    class Meta:
        model = Task
        fields: list[str] = []
        form = TaskFilterForm

    def order_by_choice(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        return qs.order_by(*SORTS.get(value, SORTS["-created"]))

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        # The default order applies when `sort` is absent or invalid; a valid one replaces it.
        return super().filter_queryset(queryset.order_by(*SORTS["-created"]))

    def queryset_without_status(self) -> QuerySet:
        """Every valid filter except status: what the status chips count."""
        self.errors  # noqa: B018 -- validates the form, filling cleaned_data
        qs = self.queryset.all()
        for name, value in self.form.cleaned_data.items():
            if name not in ("status", "sort"):
                qs = self.filters[name].filter(qs, value)
        return qs

    def tally_filter(self, *, account_ids: frozenset[int] | None) -> TallyFilter | None:
        """queryset_without_status() as the task tally can count it; None when it cannot
        (pasted ids: those count on the task table, a few rows through the id index)."""
        self.errors  # noqa: B018
        cleaned = self.form.cleaned_data
        if cleaned.get("ids"):
            return None
        return TallyFilter(
            account_ids=account_ids,
            kind=cleaned.get("kind") or "",
            model=cleaned.get("model") or "",
            archive_state=cleaned.get("archive") or "",
            created_after=cleaned.get("created_after"),
            created_before=cleaned.get("created_before"),
        )

    def selected_statuses(self) -> list[str]:
        self.errors  # noqa: B018
        return list(self.form.cleaned_data.get("status") or [])

    def rejected_params(self) -> list[str]:
        """Query parameters that were not applied because they are invalid."""
        names = [name for name in self.form.errors if name in self.filters]
        if self.form.has_error("__all__", code="bad_range"):
            names += ["created_after", "created_before"]
        return names

    def error_messages(self) -> list[str]:
        """One line per invalid parameter, naming the field."""
        messages = []
        for name, errors in self.form.errors.items():
            label = self.form.fields[name].label if name in self.form.fields else None
            for error in errors:
                messages.append(f"{label}: {error}" if label else str(error))
        return messages


class PagingForm(forms.Form):
    page = forms.IntegerField(
        min_value=1, required=False,
        error_messages={"min_value": _("Page numbers start at 1."), "invalid": _("Page must be a whole number.")},
    )
    page_size = forms.TypedChoiceField(
        choices=[(str(size), str(size)) for size in PAGE_SIZES], coerce=int, required=False, empty_value=None,
        error_messages={"invalid_choice": _("Page size must be one of 10, 25, 50, 100 or 200.")},
    )


@dataclass(frozen=True)
class Paging:
    page: int
    page_size: int
    errors: tuple[str, ...]
    invalid: tuple[str, ...] = ()  # the parameter names that were rejected


def parse_paging(params: Mapping[str, str]) -> Paging:
    """page and page_size from the query string, with defaults for bad values."""
    data = {key: params.get(key, "") for key in ("page", "page_size")}
    form = PagingForm(data=data)
    form.is_valid()
    page = form.cleaned_data.get("page") or 1
    page_size = form.cleaned_data.get("page_size") or DEFAULT_PAGE_SIZE
    errors = tuple(str(error) for field_errors in form.errors.values() for error in field_errors)
    return Paging(page=page, page_size=page_size, errors=errors, invalid=tuple(form.errors))
