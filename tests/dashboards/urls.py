"""The portal's URLs with the dashboards wired in as the lead will wire them (`/` → overview, /dashboards/).

Used by these tests until skywatch_portal/urls.py includes apps.dashboards.urls; harmless afterwards.
"""

from django.urls import URLResolver, include, path

from skywatch_portal import urls as portal_urls


def _is_dashboards(pattern) -> bool:
    if isinstance(pattern, URLResolver):
        return getattr(pattern.urlconf_module, "__name__", "") == "apps.dashboards.urls"
    return getattr(pattern, "name", None) == "home"


urlpatterns = [path("", include("apps.dashboards.urls"))] + [
    p for p in portal_urls.urlpatterns if not _is_dashboards(p)
]
