from __future__ import annotations

from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.utils.translation import gettext_lazy as _


class TasksAppConfig(AppConfig):
    name = "tasks_app"
    verbose_name = _("Ark tasks")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from arkdash.security import private_sqlite_file

        # Every connection, not once: the file may be created by any process, any time.
        connection_created.connect(private_sqlite_file, dispatch_uid="arkdash-private-sqlite")
