from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path

from tasks_app import views_health


def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    """Browsers ask for /favicon.ico whatever the page links: send them to the real icon."""
    return HttpResponsePermanentRedirect(static("img/favicon.svg"))


urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    # No trailing slash: the paths probes and Prometheus use by default.
    path("healthz", views_health.healthz, name="healthz"),
    path("metrics", views_health.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    # Login, logout and password change only: no password reset by e-mail (ArkDash sends
    # no mail; an admin sets a new password in the admin instead).
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password_change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password_change/done/", auth_views.PasswordChangeDoneView.as_view(),
         name="password_change_done"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("tasks_app.gateway.urls")),
    path("", include("tasks_app.alerts.urls")),
    path("", include("tasks_app.urls")),
]
