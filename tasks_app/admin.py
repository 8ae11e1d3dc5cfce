"""The Django admin: accounts and who may see them, and the audit log.

Staff manage accounts here. An account's API key is write-only: typed into a password
field that never shows a value, left unchanged when left blank, and never displayed.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db.models import Count, Q, QuerySet, Value
from django.db.models.functions import Concat
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.timesince import timesince
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .models import ACTIVE_STATUSES, Account, AuditEntry, Membership, ModelPrice
from .services import accounts

_SECRET_PLACEHOLDER = "secret-placeholder"


class AccountAdminForm(forms.ModelForm):
    base_url = forms.URLField(label=_("base URL"), max_length=300, assume_scheme="https",
                              help_text=_("e.g. https://ark.cn-beijing.volces.com/api/v3"))
    api_key = forms.CharField(
        label=_("Ark API key"),
        required=False,
        strip=True,
        max_length=500,
        # render_value=False: the key is never sent back to a browser, not even after an error.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("Stored encrypted and never shown again. Leave blank to keep the current key."),
    )

    class Meta:
        model = Account
        fields = ["name", "base_url"]

    def clean_api_key(self) -> str:
        key = self.cleaned_data["api_key"]
        if not key and self.instance.pk is None:
            raise forms.ValidationError(_("A new account needs its Ark API key."))
        if any(ch.isspace() or not ch.isprintable() for ch in key):
            # The message must not repeat the key: it is shown next to the field.
            raise forms.ValidationError(_("An API key has no spaces or control characters: check what was pasted."))
        return key

    def clean_base_url(self) -> str:
        base_url = self.cleaned_data["base_url"].strip().rstrip("/")
        problem = accounts.base_url_problem(base_url)
        if problem:
            raise forms.ValidationError(problem)
        return base_url

    def clean(self) -> dict:
        cleaned = super().clean()
        # Where the key is sent is part of the secret: moving it needs the key itself, so
        # someone who may edit accounts cannot point a key they never knew at their host.
        self.previous_base_url = self.instance.base_url if self.instance.pk else ""
        base_url = cleaned.get("base_url")
        if self.instance.pk and base_url and base_url != self.instance.base_url and not cleaned.get("api_key"):
            self.add_error("api_key", _("Type the API key again to change the base URL: the key is sent there."))
        return cleaned

    @property
    def base_url_changed(self) -> bool:
        return bool(self.previous_base_url) and self.instance.base_url != self.previous_base_url

    def save(self, commit: bool = True) -> Account:
        account = super().save(commit=False)
        if self.cleaned_data.get("api_key"):
            account.set_api_key(self.cleaned_data["api_key"])
        if commit:
            account.save()
        return account


class _MembershipInlineBase(admin.TabularInline):
    """Plain selects, not autocomplete_fields: a team has a handful of people and accounts,
    and Django's autocomplete widget crashes re-rendering a form posted with a bad id."""

    model = Membership
    # A posted TOTAL_FORMS is believed up to absolute_max (Django's default: 2000 forms to
    # build and render); nobody has a hundred memberships on one page.
    max_num = 100

    def get_formset(self, request, obj=None, **kwargs):
        kwargs.setdefault("absolute_max", self.max_num)
        return super().get_formset(request, obj, **kwargs)


class MembershipInline(_MembershipInlineBase):
    extra = 1


def _callback_url_prefix(request: HttpRequest) -> str:
    """https://host/hooks/ark/ as this request reached us (Ark must reach the same host)."""
    path = reverse("tasks_app:ark_callback", args=[_SECRET_PLACEHOLDER])
    return request.build_absolute_uri(path.removesuffix(f"{_SECRET_PLACEHOLDER}/"))


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    form = AccountAdminForm
    inlines = [MembershipInline]
    list_display = ["name", "base_url", "sync_health", "task_count", "active_task_count", "shared_tasks",
                    "callback_url"]
    search_fields = ["name"]
    readonly_fields = ["callback_url", "sync_health", "last_sync_error", "last_full_sweep_at", "shared_tasks",
                       "is_default", "created", "retention_days"]
    fieldsets = [
        (None, {"fields": ["name", "base_url", "api_key", "is_default"]}),
        (_("Callbacks"), {
            "fields": ["callback_url"],
            "description": _("Pass this URL as callback_url when creating tasks with this account's key: "
                             "ArkDash then refreshes the task the moment Ark calls."),
        }),
        (_("Sync"), {"fields": ["sync_health", "last_sync_error", "last_full_sweep_at", "shared_tasks", "created"]}),
        (_("Archive"), {
            "fields": ["retention_days"],
            # Set on the archive page, where each change is audited like the other actions.
            "description": _("Operators set the retention rule on the archive page (/archive/)."),
        }),
    ]

    def save_model(self, request: HttpRequest, obj: Account, form: AccountAdminForm, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if change and form.base_url_changed:
            accounts.account_base_url_audit(user=request.user, account=obj, old=form.previous_base_url)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Account]:
        # The callback URL needs the request's host, and list columns only get the row:
        # the row carries it. Counts for the list in the same query.
        return (
            super().get_queryset(request)
            .annotate(
                callback_url_abs=Concat(Value(_callback_url_prefix(request)), "callback_secret", Value("/")),
                n_tasks=Count("tasks"),
                n_active=Count("tasks", filter=Q(tasks__status__in=ACTIVE_STATUSES)),
            )
        )

    @admin.display(description=_("callback URL"))
    def callback_url(self, account: Account) -> str:
        if account.pk is None:
            return gettext("Shown once the account is saved.")
        return getattr(account, "callback_url_abs", "") or reverse("tasks_app:ark_callback",
                                                                   args=[account.callback_secret])

    @admin.display(description=_("tasks"), ordering="n_tasks")
    def task_count(self, account: Account) -> int:
        return getattr(account, "n_tasks", 0)

    @admin.display(description=_("queued or running"), ordering="n_active")
    def active_task_count(self, account: Account) -> int:
        return getattr(account, "n_active", 0)

    @admin.display(description=_("same tasks as"))
    def shared_tasks(self, account: Account) -> str:
        if account.pk is None:
            return ""
        names = sorted(account.shares_tasks_with.values_list("name", flat=True))
        if not names:
            return ""
        return gettext(
            "%(names)s: these keys see the same Ark tasks; each output is archived once"
        ) % {"names": ", ".join(names)}

    @admin.display(description=_("sync health"))
    def sync_health(self, account: Account) -> str:
        now = timezone.now()
        if account.failing_since:
            return gettext("failing since %(since)s (%(n)d cycles)") % {
                "since": timezone.localtime(account.failing_since).strftime("%Y-%m-%d %H:%M:%S"),
                "n": account.consecutive_failures,
            }
        if account.last_sync_ok_at:
            return gettext("ok, synced %(ago)s ago") % {"ago": timesince(account.last_sync_ok_at, now)}
        return gettext("never synced")


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "account", "role", "created"]
    list_filter = ["role", "account"]
    search_fields = ["user__username", "account__name"]


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    """Read-only: an audit log nobody can edit from the site.

    Reading it takes its own permission, "Can view audit entry" (tasks_app.view_auditentry),
    granted to a user or a group on its own: being staff is not enough.
    """

    list_display = ["created", "username", "action", "result", "account_name", "ark_id", "short_message"]
    list_filter = [
        "action",
        "result",
        ("account", admin.RelatedOnlyFieldListFilter),
        ("user", admin.RelatedOnlyFieldListFilter),
        "created",
    ]
    search_fields = ["ark_id", "username"]
    date_hierarchy = "created"
    list_select_related = False
    readonly_fields = ["created", "user", "username", "account", "account_name", "task", "ark_id", "action",
                       "result", "code", "message"]
    fields = readonly_fields

    @admin.display(description=_("message"))
    def short_message(self, entry: AuditEntry) -> str:
        return entry.message if len(entry.message) <= 120 else entry.message[:119] + "…"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    """The price table behind the insights page's cost estimate (empty until staff fill it)."""

    list_display = ["model", "cny_per_million_tokens"]
    list_editable = ["cny_per_million_tokens"]
    search_fields = ["model"]


class MembershipByUserInline(_MembershipInlineBase):
    extra = 0
    verbose_name_plural = _("Ark accounts this person sees")


# The user page lists the person's accounts too (the usual place to look).
_User = get_user_model()
if admin.site.is_registered(_User):
    _user_admin_class = type(admin.site._registry[_User])
    admin.site.unregister(_User)
else:
    _user_admin_class = UserAdmin


@admin.register(_User)
class ArkDashUserAdmin(_user_admin_class):
    inlines = [*_user_admin_class.inlines, MembershipByUserInline]


class BadLookupsAreRefused:
    """A hand-edited admin list URL with a value out of range (created__year=0 or 10000)
    fails when the query is compiled, past Django's own check of the lookups: send it
    down Django's "invalid lookup" path (a redirect to ?e=1) instead of a 500."""

    def get_changelist_instance(self, request: HttpRequest):
        try:
            return super().get_changelist_instance(request)
        except (ValueError, OverflowError) as error:
            raise IncorrectLookupParameters(error) from error


from .gateway import admin as _gateway_admin  # noqa: E402,F401 - registers the API tokens' admin

# Every admin list: ours, and those of the apps before us (auth, axes).
for _model, _model_admin in list(admin.site._registry.items()):
    if not isinstance(_model_admin, BadLookupsAreRefused):
        admin.site.unregister(_model)
        admin.site.register(_model, type(type(_model_admin).__name__, (BadLookupsAreRefused, type(_model_admin)), {}))
from .alerts import admin as _alerts_admin  # noqa: E402,F401 - registers the alerts' admin
