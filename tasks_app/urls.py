from django.urls import path

from . import views, views_download, views_hooks

app_name = "tasks_app"

urlpatterns = [
    path("", views.task_list, name="task_list"),
    path("hooks/ark/<str:secret>/", views_hooks.ark_callback, name="ark_callback"),
    path("tasks/rows/", views.task_rows, name="task_rows"),
    path("tasks/cancel/", views.tasks_cancel_bulk, name="tasks_cancel_bulk"),
    path("tasks/<int:pk>/", views.task_detail, name="task_detail"),
    path("tasks/<int:pk>/cancel/", views.task_cancel, name="task_cancel"),
    path("tasks/<int:pk>/delete/", views.task_delete, name="task_delete"),
    path("outputs/<int:artifact_id>/download/", views_download.artifact_download, name="artifact_download"),
]
