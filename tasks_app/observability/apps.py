from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ObservabilityConfig(AppConfig):
    """Wires metrics and log context into the Ark client and Celery when Django starts."""

    name = "tasks_app.observability"
    label = "observability"
    verbose_name = _("Observability")

    def ready(self) -> None:
        from tasks_app.ark.observe import add_call_observer

        from . import celery_signals, metrics

        add_call_observer(metrics.record_ark_call)
        celery_signals.connect()
