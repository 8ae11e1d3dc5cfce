"""Personal API tokens for the gateway, and which tasks were created through them."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

TOKEN_PREFIX = "adk-"


def hash_token(plain: str) -> str:
    # The token is 256 random bits: a fast hash is enough (nothing to brute-force).
    return hashlib.sha256(plain.encode("utf-8", "surrogatepass")).hexdigest()


def new_token_value() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class ApiToken(models.Model):
    """A person's token for the gateway, scoped to some of their accounts. Stored hashed."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens", verbose_name=_("user")
    )
    name = models.CharField(_("name"), max_length=100)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    # The first characters, to tell tokens apart on the page (never enough to use one).
    hint = models.CharField(_("starts with"), max_length=16, editable=False)
    accounts = models.ManyToManyField("tasks_app.Account", related_name="api_tokens", verbose_name=_("accounts"))
    # Where creates go when the caller names no account (X-ArkDash-Account header).
    create_account = models.ForeignKey(
        "tasks_app.Account", on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("account for creates"),
    )
    read_only = models.BooleanField(_("read-only"), default=False)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    # Model names or endpoint ids a create may use; empty means any.
    allowed_models = models.JSONField(_("allowed models"), default=list, blank=True)
    daily_token_budget = models.BigIntegerField(_("tokens per day"), null=True, blank=True)
    monthly_token_budget = models.BigIntegerField(_("tokens per month"), null=True, blank=True)
    requests_per_minute = models.PositiveIntegerField(_("requests per minute"), default=600)
    created = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        app_label = "tasks_app"
        ordering = ["-created"]
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @property
    def is_usable(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > timezone.now()


class GatewayTask(models.Model):
    """A task created through the gateway: by which token, to which endpoint, relayed where."""

    task = models.OneToOneField("tasks_app.Task", on_delete=models.CASCADE, related_name="gateway_origin")
    token = models.ForeignKey(ApiToken, on_delete=models.SET_NULL, null=True, related_name="tasks")
    # The `model` the caller sent: an endpoint id (ep-...) or a model name; filter.model matches it.
    endpoint = models.CharField(max_length=128, db_index=True)
    # The caller's own callback_url, relayed to after ArkDash re-reads the task.
    callback_url = models.TextField(blank=True)
    # ArkDash's address as the caller reached it: output links in relayed callbacks use it.
    site_url = models.CharField(max_length=300, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        app_label = "tasks_app"
        indexes = [models.Index(fields=["token", "created"], name="gateway_task_token_created")]

    def __str__(self) -> str:
        return f"{self.task_id} via {self.token_id}"
