"""The alerts page: account operators manage their accounts' channels and rules, send a
test message, and read the delivery history."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from ..selectors import access_for
from . import selectors, services
from .forms import ChannelForm, RuleForm


def _page(request: HttpRequest, *, channel_form: ChannelForm | None = None, rule_form: RuleForm | None = None,
          status: int = 200) -> HttpResponse:
    accounts = selectors.accounts_operable(access=access_for(request.user))
    return render(request, "tasks_app/alerts.html", {
        "accounts": accounts,
        "channels": selectors.channels_for(accounts=accounts),
        "rules": selectors.rules_for(accounts=accounts),
        "history": selectors.history_for(accounts=accounts),
        "channel_form": channel_form or ChannelForm(accounts=accounts, prefix="channel"),
        "rule_form": rule_form or RuleForm(accounts=accounts, prefix="rule"),
    }, status=status)


@login_required
@require_http_methods(["GET"])
def alerts_page(request: HttpRequest) -> HttpResponse:
    return _page(request)


def _back() -> HttpResponseRedirect:
    return HttpResponseRedirect(reverse("alerts:page"))


@login_required
@require_POST
def channel_add(request: HttpRequest) -> HttpResponse:
    accounts = selectors.accounts_operable(access=access_for(request.user))
    form = ChannelForm(request.POST, accounts=accounts, prefix="channel")
    if not form.is_valid():
        return _page(request, channel_form=form, status=400)
    channel = form.save(commit=False)
    channel.created_by = request.user
    channel.save()
    messages.success(request, _("Channel “%(name)s” added.") % {"name": channel.name})
    return _back()


@login_required
@require_POST
def channel_delete(request: HttpRequest, pk: int) -> HttpResponse:
    channel = selectors.channel_for_operator(user=request.user, pk=pk)
    channel.delete()
    messages.success(request, _("Channel “%(name)s” and its rules deleted.") % {"name": channel.name})
    return _back()


@login_required
@require_POST
def channel_test(request: HttpRequest, pk: int) -> HttpResponse:
    channel = selectors.channel_for_operator(user=request.user, pk=pk)
    services.channel_send_test(channel=channel)
    messages.success(request, _("Test message to “%(name)s” queued: its answer appears in the history below.")
                     % {"name": channel.name})
    return _back()


@login_required
@require_POST
def rule_add(request: HttpRequest) -> HttpResponse:
    accounts = selectors.accounts_operable(access=access_for(request.user))
    form = RuleForm(request.POST, accounts=accounts, prefix="rule")
    if not form.is_valid():
        return _page(request, rule_form=form, status=400)
    form.save()
    messages.success(request, _("Rule added."))
    return _back()


@login_required
@require_POST
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    selectors.rule_for_operator(user=request.user, pk=pk).delete()
    messages.success(request, _("Rule deleted."))
    return _back()
