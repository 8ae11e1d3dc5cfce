from __future__ import annotations

from django.urls import path, register_converter

from . import views, views_download, views_export, views_hooks, views_insights


class IdConverter:
    """A database id written the one canonical way: no leading zeros, no sign, at most 18
    digits (always inside a bigint, so no lookup can overflow). `/tasks/0001/` is not task 1."""

    regex = "[1-9][0-9]{0,17}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(int(value))


register_converter(IdConverter, "id")

app_name = "tasks_app"

urlpatterns = [
    path("", views.task_list, name="task_list"),
    path("hooks/ark/<str:secret>/", views_hooks.ark_callback, name="ark_callback"),
    path("tasks/rows/", views.task_rows, name="task_rows"),
    path("tasks/export.csv", views_export.task_export, {"fmt": "csv"}, name="task_export_csv"),
    path("tasks/export.jsonl", views_export.task_export, {"fmt": "jsonl"}, name="task_export_jsonl"),
    path("insights/", views_insights.insights, name="insights"),
    path("tasks/cancel/", views.tasks_cancel_bulk, name="tasks_cancel_bulk"),
    path("tasks/<id:pk>/", views.task_detail, name="task_detail"),
    # cancel/ and delete/ stay under the task's own URL: the list's rows build them from it.
    path("tasks/<id:pk>/cancel/", views.task_cancel, name="task_cancel"),
    path("tasks/<id:pk>/delete/", views.task_delete, name="task_delete"),
    path("outputs/<id:artifact_id>/download/", views_download.artifact_download, name="artifact_download"),
]
