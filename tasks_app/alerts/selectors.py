"""Alerts' reads: what an operator may manage, and the delivery history."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from ..models import Account
from ..selectors import Access, User, access_for
from .models import AlertChannel, AlertRule, Notification

HISTORY_ROWS = 50


def accounts_operable(*, access: Access) -> list[Account]:
    """The accounts whose alerts this person may manage: those they may operate."""
    return [account for account in access.accounts().order_by("name") if access.can_operate(account.pk)]


def channels_for(*, accounts: list[Account]) -> QuerySet[AlertChannel]:
    return AlertChannel.objects.filter(account__in=accounts).select_related("account").order_by("account__name", "name")


def rules_for(*, accounts: list[Account]) -> QuerySet[AlertRule]:
    return (AlertRule.objects.filter(account__in=accounts).select_related("account", "channel")
            .order_by("account__name", "event", "pk"))


def history_for(*, accounts: list[Account], limit: int = HISTORY_ROWS) -> list[Notification]:
    return list(Notification.objects.filter(channel__account__in=accounts).select_related("channel", "channel__account")
                .order_by("-created", "-pk")[:limit])


def channel_for_operator(*, user: User, pk: int) -> AlertChannel:
    """A channel of an account the user may operate, or Http404 (others' channels do not exist)."""
    channel = AlertChannel.objects.select_related("account").filter(pk=pk).first()
    if channel is None or not access_for(user).can_operate(channel.account_id):
        raise Http404("No such channel")
    return channel


def rule_for_operator(*, user: User, pk: int) -> AlertRule:
    rule = AlertRule.objects.select_related("account", "channel").filter(pk=pk).first()
    if rule is None or not access_for(user).can_operate(rule.account_id):
        raise Http404("No such rule")
    return rule
