from __future__ import annotations

from django.urls import path, register_converter

from . import views, views_archive, views_download, views_export, views_gallery, views_hooks, views_insights


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
    path("gallery/", views_gallery.task_gallery, name="task_gallery"),
    path("tasks/<id:pk>/picture/", views_download.task_picture, name="task_picture"),
    path("outputs/<id:artifact_id>/download/", views_download.artifact_download, name="artifact_download"),
    # Archive control (views_archive.py).
    path("archive/", views_archive.archive_page, name="archive"),
    path("archive/retry-failed/", views_archive.outputs_retry_failed, name="outputs_retry_failed"),
    path("archive/accounts/<id:account_id>/retention/", views_archive.account_retention, name="account_retention"),
    path("outputs/<id:artifact_id>/", views_archive.artifact_line, name="artifact_line"),
    path("outputs/<id:artifact_id>/retry/", views_archive.artifact_retry, name="artifact_retry"),
    path("tasks/delete/", views_archive.tasks_delete_bulk, name="tasks_delete_bulk"),
    path("tasks/remove/", views_archive.tasks_remove_bulk, name="tasks_remove_bulk"),
]
