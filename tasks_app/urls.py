from django.urls import path

from . import views, views_hooks

app_name = "tasks_app"

urlpatterns = [
    path("", views.task_list, name="task_list"),
    path("hooks/ark/<str:secret>/", views_hooks.ark_callback, name="ark_callback"),
]
