"""The page where a person creates and revokes their personal API tokens for the gateway."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from ..models import Account
from ..selectors import User, accounts_visible_to
from .models import ApiToken, hash_token, new_token_value
from .selectors import budget_periods, token_spend

MAX_TOKENS_PER_USER = 50


class TokenForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100)
    accounts = forms.ModelMultipleChoiceField(
        label=gettext_lazy("Accounts"), queryset=Account.objects.none(), widget=forms.CheckboxSelectMultiple
    )
    create_account = forms.ModelChoiceField(
        label=gettext_lazy("Account for creates"), queryset=Account.objects.none(), required=False,
        help_text=gettext_lazy("Used when a request names no account in the X-ArkDash-Account header."),
    )
    read_only = forms.BooleanField(label=gettext_lazy("Read-only"), required=False)
    expires_in_days = forms.IntegerField(
        label=gettext_lazy("Expires after (days)"), required=False, min_value=1, max_value=3650
    )
    allowed_models = forms.CharField(
        label=gettext_lazy("Allowed models"), required=False, max_length=2000,
        help_text=gettext_lazy("Model names or endpoint ids, separated by spaces or commas. Empty: any."),
    )
    daily_token_budget = forms.IntegerField(label=gettext_lazy("Tokens per day"), required=False, min_value=0)
    monthly_token_budget = forms.IntegerField(label=gettext_lazy("Tokens per month"), required=False, min_value=0)
    requests_per_minute = forms.IntegerField(
        label=gettext_lazy("Requests per minute"), initial=600, min_value=1, max_value=100_000
    )

    def __init__(self, *args, user: User, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        visible = accounts_visible_to(user).order_by("name")
        self.fields["accounts"].queryset = visible
        self.fields["create_account"].queryset = visible

    def clean_allowed_models(self) -> list[str]:
        raw = self.cleaned_data["allowed_models"].replace(",", " ")
        return list(dict.fromkeys(name for name in raw.split() if name))[:100]

    def clean(self) -> dict:
        data = super().clean()
        chosen = data.get("create_account")
        if chosen is not None and chosen not in (data.get("accounts") or []):
            self.add_error("create_account", _("Choose one of the token's accounts."))
        return data


def token_create(*, user: User, form: TokenForm) -> tuple[ApiToken, str]:
    """A new token for `user`; returns it and its value, which is never stored."""
    data = form.cleaned_data
    plain = new_token_value()
    days = data.get("expires_in_days")
    with transaction.atomic():
        token = ApiToken.objects.create(
            user=user,
            name=data["name"],
            token_hash=hash_token(plain),
            hint=plain[:8],
            create_account=data.get("create_account"),
            read_only=data["read_only"],
            expires_at=timezone.now() + timedelta(days=days) if days else None,
            allowed_models=data["allowed_models"],
            daily_token_budget=data.get("daily_token_budget"),
            monthly_token_budget=data.get("monthly_token_budget"),
            requests_per_minute=data["requests_per_minute"],
        )
        token.accounts.set(data["accounts"])
    return token, plain


@login_required
@never_cache  # the page may show a new token's value: no copy in any cache
@require_http_methods(["GET", "POST"])
def token_list(request: HttpRequest) -> HttpResponse:
    new_token = ""
    form = TokenForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        if ApiToken.objects.filter(user=request.user, revoked_at__isnull=True).count() >= MAX_TOKENS_PER_USER:
            form.add_error(None, _("You have too many tokens: revoke some first."))
        else:
            _token, new_token = token_create(user=request.user, form=form)
            form = TokenForm(user=request.user)
    day, month = budget_periods()
    tokens = list(ApiToken.objects.filter(user=request.user).prefetch_related("accounts"))
    for token in tokens:
        token.spent_today = token_spend(token, since=day)
        token.spent_month = token_spend(token, since=month)
    gateway_url = request.build_absolute_uri(reverse("gateway:tasks")).removesuffix("/contents/generations/tasks")
    return render(
        request, "tasks_app/api_tokens.html",
        {"form": form, "tokens": tokens, "new_token": new_token, "gateway_url": gateway_url},
    )


@login_required
@require_POST
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)  # another person's token: 404
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        messages.success(request, _("Token “%(name)s” revoked.") % {"name": token.name})
    return HttpResponseRedirect(reverse("gateway:tokens"))
