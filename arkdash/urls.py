from django.contrib import admin
from django.urls import include, path

from tasks_app import views_health

urlpatterns = [
    # No trailing slash: the paths probes and Prometheus use by default.
    path("healthz", views_health.healthz, name="healthz"),
    path("metrics", views_health.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("tasks_app.urls")),
]
