"""Personal API tokens in the admin: staff see who holds which token and can revoke it.

Tokens are made by their owners on the tokens page (the value is shown only there, once);
the admin never adds one or shows more than its first characters.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["name", "hint", "user", "read_only", "expires_at", "requests_per_minute", "last_used_at",
                    "revoked_at"]
    list_filter = ["read_only", "revoked_at"]
    search_fields = ["name", "user__username", "hint"]
    list_select_related = ["user"]
    readonly_fields = ["user", "hint", "accounts", "create_account", "allowed_models", "created", "last_used_at",
                       "revoked_at"]
    fields = ["name", "user", "hint", "accounts", "create_account", "read_only", "expires_at", "allowed_models",
              "daily_token_budget", "monthly_token_budget", "requests_per_minute", "created", "last_used_at",
              "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # only the owner makes a token: its value is shown to them once

    @admin.action(description=_("Revoke the selected tokens"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(
            request, ngettext("%(n)d token revoked.", "%(n)d tokens revoked.", count) % {"n": count}, messages.SUCCESS
        )
