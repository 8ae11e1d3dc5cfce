from django.urls import path, re_path

from . import relay, tokens, views

app_name = "gateway"

urlpatterns = [
    # Ark's own paths, without trailing slashes, as the official SDK calls them.
    path("api/v3/contents/generations/tasks", views.tasks_collection, name="tasks"),
    path("api/v3/contents/generations/tasks/<str:task_id>", views.task_item, name="task"),
    re_path(r"^api/v3/(?P<rest>.*)$", views.not_an_endpoint, name="api_not_found"),
    path("gateway/outputs/<str:signed>", views.output_download, name="output"),
    path("gateway/hooks/<str:secret>/", relay.ark_callback, name="ark_callback"),
    path("settings/tokens/", tokens.token_list, name="tokens"),
    path("settings/tokens/<int:pk>/revoke/", tokens.token_revoke, name="token_revoke"),
]
