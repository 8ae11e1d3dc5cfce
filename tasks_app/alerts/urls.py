from django.urls import path

from . import views

app_name = "alerts"

urlpatterns = [
    path("settings/alerts/", views.alerts_page, name="page"),
    path("settings/alerts/channels/", views.channel_add, name="channel_add"),
    path("settings/alerts/channels/<int:pk>/delete/", views.channel_delete, name="channel_delete"),
    path("settings/alerts/channels/<int:pk>/test/", views.channel_test, name="channel_test"),
    path("settings/alerts/rules/", views.rule_add, name="rule_add"),
    path("settings/alerts/rules/<int:pk>/delete/", views.rule_delete, name="rule_delete"),
]
