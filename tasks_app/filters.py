"""The task list's query string: filters, sort, page size and cursor, validated like forms.

The URL is the page's state, so anything in it may be hand-edited or stale: every
value is validated and an invalid one is reported (and ignored), never a 500.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import F, Q, QuerySet
from django.http import QueryDict
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .models import ACTIVE_STATUSES, ArchiveState, Task, TaskKind, TaskStatus

# Ark ids look like cgt-20250331175019-68d9t; accept the family loosely (the suffix
# format is not promised) but refuse anything that could not be an id.
TASK_ID_PATTERN = re.compile(r"^cgt-[0-9A-Za-z-]{1,60}$")
TASK_ID_SEPARATORS = re.compile(r"[\s,;]+")
# Ark's own filter.task_ids batch is 500; more than that in a box is a paste accident.
MAX_TASK_IDS = 500

PAGE_SIZES = (10, 25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
DEFAULT_SORT = "-created"


def in_statuses(statuses: list[str]) -> Q:
    """Tasks in these statuses. A queued or running task gone from Ark is neither any more:
    nothing will ever re-read it (it shows as "gone from Ark, last seen running")."""
    # Written so that the finished statuses, nearly every row, need no look at
    # gone_upstream_at: their counts stay index-only scans.
    finished = [status for status in statuses if status not in ACTIVE_STATUSES]
    active = [status for status in statuses if status in ACTIVE_STATUSES]
    condition = Q(status__in=finished) if finished else Q()
    if active:
        still_upstream = Q(status__in=active, gone_upstream_at__isnull=True)
        condition = condition | still_upstream if finished else still_upstream
    return condition


@dataclass(frozen=True)
class Sort:
    field: str
    descending: bool
    nullable: bool = False  # Ark may leave updated_at out


SORTS = {
    "-created": Sort("ark_created_at", descending=True),
    "created": Sort("ark_created_at", descending=False),
    "-updated": Sort("ark_updated_at", descending=True, nullable=True),
    "updated": Sort("ark_updated_at", descending=False, nullable=True),
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


class StorableDateTimeField(forms.DateTimeField):
    """A local date and time that the database can store once turned into UTC.

    9999-12-31 23:59 in Los Angeles is past year 9999 in UTC, and 0001-01-01 00:00 in
    Tokyo is before year 1: Python cannot represent either, and the query would fail.
    """

    def to_python(self, value: object) -> datetime | None:
        result = super().to_python(value)
        if result is None:
            return None
        try:
            result.astimezone(UTC)
        except (OverflowError, ValueError):
            raise ValidationError(_("That date is out of range."), code="out_of_range") from None
        return result


class StorableDateTimeFilter(django_filters.DateTimeFilter):
    field_class = StorableDateTimeField


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
        label=_("Status"), choices=TaskStatus.choices, widget=forms.CheckboxSelectMultiple, method="in_status"
    )
    kind = django_filters.ChoiceFilter(label=_("Kind"), choices=TaskKind.choices, empty_label=_("Any kind"))
    model = django_filters.CharFilter(label=_("Model"), field_name="model", max_length=128)
    ids = TaskIdsFilter(label=_("Task ids"), help_text=_("Separate with commas, spaces or new lines."))
    created_after = StorableDateTimeFilter(
        label=_("Created from"), field_name="ark_created_at", lookup_expr="gte",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    created_before = StorableDateTimeFilter(
        label=_("Created until"), field_name="ark_created_at", lookup_expr="lt",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    archive = django_filters.ChoiceFilter(
        label=_("Archive"), field_name="archive_state", choices=ArchiveState.choices, empty_label=_("Any state")
    )
    # Sorting is applied by the list selector (it pages by the sort's keys), not here.
    sort = django_filters.ChoiceFilter(label=_("Sort"), choices=SORT_CHOICES, method="keep", empty_label=None)

    class Meta:
        model = Task
        fields: list[str] = []
        form = TaskFilterForm

    def keep(self, qs: QuerySet, name: str, value: str) -> QuerySet:
        return qs

    def in_status(self, qs: QuerySet, name: str, value: list[str]) -> QuerySet:
        return qs.filter(in_statuses(value)) if value else qs

    @property
    def chosen_sort(self) -> Sort:
        return SORTS[self.sort_name]

    @property
    def sort_name(self) -> str:
        self.errors  # noqa: B018 -- validates the form, filling cleaned_data
        return self.form.cleaned_data.get("sort") or DEFAULT_SORT

    def queryset_without_status(self) -> QuerySet:
        """Every valid filter except status: what the status chips count."""
        self.errors  # noqa: B018
        qs = self.queryset.all()
        for name, value in self.form.cleaned_data.items():
            if name not in ("status", "sort"):
                qs = self.filters[name].filter(qs, value)
        return qs

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


# --- paging by cursor ------------------------------------------------------------------

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# <microseconds since 1970, or "n" for a row without the sort's time>.<primary key>
CURSOR_PATTERN = re.compile(r"^(-?[0-9]{1,17}|n)\.([0-9]{1,18})$")


@dataclass(frozen=True)
class Cursor:
    """A row's place in a sort: the sort's value and the primary key that breaks ties."""

    value: datetime | None
    pk: int

    @classmethod
    def of(cls, task: Task, sort: Sort) -> Cursor:
        return cls(getattr(task, sort.field), task.pk)

    @classmethod
    def parse(cls, text: str) -> Cursor:
        match = CURSOR_PATTERN.match(text)
        if match is None:
            raise ValueError(text)
        value = None if match[1] == "n" else _EPOCH + timedelta(microseconds=int(match[1]))  # may overflow
        return cls(value, int(match[2]))

    def __str__(self) -> str:
        micros = "n" if self.value is None else str((self.value - _EPOCH) // timedelta(microseconds=1))
        return f"{micros}.{self.pk}"

    def after(self, sort: Sort) -> Q:
        """The rows that come after this one in `sort` (ties broken by pk, no time last)."""
        field = sort.field
        tie = {"pk__lt" if sort.descending else "pk__gt": self.pk}
        if self.value is None:
            return Q(**{f"{field}__isnull": True}, **tie)
        beyond, edge = ("lt", "lte") if sort.descending else ("gt", "gte")
        # The first condition repeats the bound of the others so the database seeks to it
        # in the index instead of reading every row before it.
        rows = Q(**{f"{field}__{edge}": self.value}) & (
            Q(**{f"{field}__{beyond}": self.value}) | Q(**{field: self.value}, **tie)
        )
        return rows | Q(**{f"{field}__isnull": True}) if sort.nullable else rows

    def before(self, sort: Sort) -> Q:
        """The rows that come before this one in `sort`."""
        field = sort.field
        tie = {"pk__gt" if sort.descending else "pk__lt": self.pk}
        if self.value is None:
            return Q(**{f"{field}__isnull": False}) | Q(**{f"{field}__isnull": True}, **tie)
        beyond, edge = ("gt", "gte") if sort.descending else ("lt", "lte")
        return Q(**{f"{field}__{edge}": self.value}) & (
            Q(**{f"{field}__{beyond}": self.value}) | Q(**{field: self.value}, **tie)
        )


def ordering(sort: Sort, *, reverse: bool = False) -> tuple:
    """ORDER BY for `sort`, or its exact reverse (to walk back from a cursor).

    Rows without the time (only `updated` has any) come last. A column that is never
    null gets no NULLS clause: one would stop PostgreSQL from reading its index in order.
    """
    descending = sort.descending != reverse
    nulls = {"nulls_first": True} if reverse else {"nulls_last": True}
    options = nulls if sort.nullable else {}
    value = F(sort.field).desc(**options) if descending else F(sort.field).asc(**options)
    return (value, F("pk").desc() if descending else F("pk").asc())


BAD_CURSOR = _("This link's page position is not valid: start from the first page.")


class PagingForm(forms.Form):
    page_size = forms.TypedChoiceField(
        choices=[(str(size), str(size)) for size in PAGE_SIZES], coerce=int, required=False, empty_value=None,
        error_messages={"invalid_choice": _("Page size must be one of 10, 25, 50, 100 or 200.")},
    )
    after = forms.CharField(required=False, max_length=40, error_messages={"max_length": BAD_CURSOR})
    before = forms.CharField(required=False, max_length=40, error_messages={"max_length": BAD_CURSOR})

    def _cursor(self, name: str) -> Cursor | None:
        text = self.cleaned_data.get(name)
        if not text:
            return None
        try:
            return Cursor.parse(text)
        except (ValueError, OverflowError):
            raise ValidationError(BAD_CURSOR, code="bad_cursor") from None

    def clean_after(self) -> Cursor | None:
        return self._cursor("after")

    def clean_before(self) -> Cursor | None:
        return self._cursor("before")


@dataclass(frozen=True)
class Paging:
    page_size: int
    after: Cursor | None
    before: Cursor | None
    errors: tuple[str, ...]
    invalid: tuple[str, ...] = ()  # the parameter names that were rejected


def parse_paging(params: QueryDict) -> Paging:
    """page_size and the cursor from the query string, with defaults for bad values."""
    form = PagingForm(data={key: params.get(key, "") for key in ("page_size", "after", "before")})
    form.is_valid()
    cleaned = form.cleaned_data
    after, before = cleaned.get("after"), cleaned.get("before")
    if after and before:  # a hand-made URL: the older page wins
        before = None
    errors = tuple(str(error) for field_errors in form.errors.values() for error in field_errors)
    return Paging(
        page_size=cleaned.get("page_size") or DEFAULT_PAGE_SIZE, after=after, before=before, errors=errors,
        invalid=tuple(form.errors),
    )
