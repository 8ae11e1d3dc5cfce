"""The forms for a channel and a rule, shared by the admin and the operator page."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from ..models import Account
from . import services
from .models import AlertChannel, AlertRule, ChannelKind

SIGNED_KINDS = (ChannelKind.WEBHOOK, ChannelKind.FEISHU, ChannelKind.DINGTALK)


class ChannelForm(forms.ModelForm):
    """Target and secret are write-only: password fields that never show a value."""

    target = forms.CharField(
        label=_("Webhook URL or e-mail addresses"), required=False, strip=True, max_length=2000,
        # render_value=False: never sent back to a browser, not even after an error.
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("Stored encrypted and never shown again (only the host). Leave blank to keep the current one."),
    )
    secret = forms.CharField(
        label=_("Signing secret"), required=False, strip=True, max_length=500,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_("Webhook: required, used to sign each request. Feishu and DingTalk: the bot's signing "
                    "secret, if it has one. Leave blank to keep the current one."),
    )

    class Meta:
        model = AlertChannel
        fields = ["account", "name", "kind", "enabled"]

    def __init__(self, *args, accounts: list[Account] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if accounts is not None:
            self.fields["account"].queryset = Account.objects.filter(pk__in=[account.pk for account in accounts])

    def clean(self) -> dict:
        data = super().clean()
        kind, target, secret = data.get("kind"), data.get("target", ""), data.get("secret", "")
        is_new = self.instance.pk is None
        if kind and self.instance.pk and kind != self.instance.kind and not target:
            self.add_error("target", _("Type the target again to change the kind of channel."))
        if is_new and not target:
            self.add_error("target", _("A new channel needs its webhook URL or e-mail addresses."))
        if kind and target:
            problem = services.target_problem(kind=kind, target=target)
            if problem:
                self.add_error("target", problem)
        if kind == ChannelKind.WEBHOOK and not secret and not self.instance.has_secret:
            self.add_error("secret", _("A webhook needs a signing secret: the receiver checks each request with it."))
        if secret and kind not in SIGNED_KINDS:
            self.add_error("secret", _("This kind of channel is not signed: leave the secret blank."))
        return data

    def save(self, commit: bool = True) -> AlertChannel:
        channel = super().save(commit=False)
        services.channel_set_target(channel=channel, target=self.cleaned_data.get("target", ""),
                                    secret=self.cleaned_data.get("secret", ""))
        if commit:
            channel.save()
        return channel


class RuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = ["account", "channel", "event", "error_code", "model", "at_risk_hours", "sync_down_minutes",
                  "queue_threshold", "enabled"]
        help_texts = {
            "error_code": _("A task failed: only this error code (blank: any)."),
            "model": _("A task failed: only this model (blank: any)."),
            "at_risk_hours": _("An output at risk: not archived with fewer hours than this before its URL dies."),
            "sync_down_minutes": _("Sync failing: for at least this many minutes."),
            "queue_threshold": _("Queued tasks near the cap: at least this many queued (Ark allows about 120)."),
        }

    def __init__(self, *args, accounts: list[Account] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if accounts is not None:
            ids = [account.pk for account in accounts]
            self.fields["account"].queryset = Account.objects.filter(pk__in=ids)
            self.fields["channel"].queryset = AlertChannel.objects.filter(account_id__in=ids)
        for name, high in (("at_risk_hours", 24), ("sync_down_minutes", 10_000), ("queue_threshold", 10_000)):
            self.fields[name].widget.attrs.update(min=1, max=high)  # checked again in clean()

    def clean(self) -> dict:
        data = super().clean()
        account, channel = data.get("account"), data.get("channel")
        if account and channel and channel.account_id != account.pk:
            self.add_error("channel", _("Choose a channel of the same account."))
        for name, low, high in (("at_risk_hours", 1, 24), ("sync_down_minutes", 1, 10_000),
                                ("queue_threshold", 1, 10_000)):
            value = data.get(name)
            if value is not None and not low <= value <= high:
                self.add_error(name, _("Choose a number from %(low)d to %(high)d.") % {"low": low, "high": high})
        return data
