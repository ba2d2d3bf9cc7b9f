"""Top-level URL map: pages, the JSON API, health probes and the admin."""

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.urls import include, path
from django.views.decorators.http import require_safe
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.accounts import views as account_views
from apps.accounts.forms import ThrottledAdminAuthenticationForm, ThrottledAuthenticationForm
from apps.dashboards.csp import inline_styles_allowed
from apps.traces.coverage_api import CoverageAPI

from . import probes

admin.site.login_form = ThrottledAdminAuthenticationForm  # one sign-in lockout for both sign-in pages

urlpatterns = [
    path("healthz", probes.healthz, name="healthz"),
    path("readyz", probes.readyz, name="readyz"),
    path(
        "login/", auth_views.LoginView.as_view(authentication_form=ThrottledAuthenticationForm), name="login"
    ),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("", include("apps.dashboards.urls")),
    path("api/v1/", include("apps.ingest.urls")),
    path("api/v1/", include("apps.traces.api_urls")),
    path("api/v1/", include("apps.metrics.urls")),
    path("api/v1/", include("apps.annotations.urls")),
    path("api/v1/coverage", CoverageAPI.as_view(), name="api-coverage"),
    path("", include("apps.wire.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view loads its script from a URL instead of inlining it (no inline scripts anywhere).
    path(
        "api/docs/",
        # GET and HEAD only: its OPTIONS answer has no template (a 500).
        # Swagger-ui sets inline styles: the page's policy allows them, as the chart pages' does.
        login_required(
            require_safe(inline_styles_allowed(SpectacularSwaggerSplitView.as_view(url_name="api-schema")))
        ),
        name="api-docs",
    ),
    # One door to change one's own password, throttled and audited: the admin's link leads to the portal's.
    path(
        "admin/password_change/",
        admin.site.admin_view(RedirectView.as_view(pattern_name="password-change")),
        name="admin-password-change",
    ),
    path("admin/", admin.site.urls),
    path("", include("apps.traces.urls")),
    path("", include("apps.ingest.urls_pages")),
    path("account/tokens/", account_views.tokens, name="tokens"),
    path("account/tokens/<slug:prefix>/revoke/", account_views.token_revoke, name="token-revoke"),
    path("account/password/", account_views.PasswordChangeView.as_view(), name="password-change"),
]
