"""Alert channels, rules, events and the delivery history in the admin.

A channel's webhook URL (or e-mail addresses) and secret are write-only, like an account's
API key: typed into password fields that never show a value; the lists show only the host
and whether a secret is set.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import services
from .forms import ChannelForm
from .models import AlertChannel, AlertEvent, AlertRule, Delivery, Notification


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
    form = ChannelForm
    list_display = ["name", "account", "kind", "target_hint", "secret_set", "enabled", "created"]
    list_filter = ["kind", "enabled", "account"]
    search_fields = ["name", "account__name"]
    list_select_related = ["account"]
    readonly_fields = ["target_hint", "secret_set", "created", "created_by"]
    fields = ["account", "name", "kind", "target", "target_hint", "secret", "secret_set", "enabled", "created",
              "created_by"]
    actions = ["send_test"]

    @admin.display(description=_("secret"))
    def secret_set(self, channel: AlertChannel) -> str:
        return _("set") if channel.has_secret else _("not set")

    def save_model(self, request: HttpRequest, obj: AlertChannel, form, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description=_("Send a test message to the selected channels"))
    def send_test(self, request: HttpRequest, queryset: QuerySet[AlertChannel]) -> None:
        count = 0
        for channel in queryset:
            services.channel_send_test(channel=channel)
            count += 1
        self.message_user(request, ngettext(
            "%(n)d test message queued: see the alert notifications for the answer.",
            "%(n)d test messages queued: see the alert notifications for the answers.", count) % {"n": count},
            messages.SUCCESS)


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ["__str__", "account", "event", "channel", "error_code", "model", "enabled", "created"]
    list_filter = ["event", "enabled", "account"]
    list_select_related = ["account", "channel"]
    readonly_fields = ["created"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        from .forms import RuleForm

        kwargs["form"] = RuleForm
        return super().get_form(request, obj, change=change, **kwargs)


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(AlertEvent)
class AlertEventAdmin(_ReadOnly):
    list_display = ["created", "account", "kind", "summary"]
    list_filter = ["kind", "account"]
    search_fields = ["key", "summary"]
    list_select_related = ["account"]
    date_hierarchy = "created"


class DeliveryInline(admin.TabularInline):
    model = Delivery
    fields = ["event", "created"]
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False


@admin.register(Notification)
class NotificationAdmin(_ReadOnly):
    """The delivery history: status, attempts and the receiver's answer (truncated)."""

    list_display = ["created", "channel", "is_test", "event_count", "state", "attempts", "response_status",
                    "sent_at"]
    list_filter = ["state", "is_test", "channel__account"]
    list_select_related = ["channel"]
    fields = ["channel", "is_test", "event_count", "state", "attempts", "next_attempt_at", "response_status",
              "response_body", "created", "sent_at"]
    readonly_fields = fields
    inlines = [DeliveryInline]
