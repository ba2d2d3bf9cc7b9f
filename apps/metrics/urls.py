from django.urls import path

from .api import FunnelAPI, PointUsersAPI, RetentionAPI, SeriesAPI

urlpatterns = [
    path("metrics/series", SeriesAPI.as_view(), name="api-metrics-series"),
    path("metrics/funnel", FunnelAPI.as_view(), name="api-metrics-funnel"),
    path("metrics/retention", RetentionAPI.as_view(), name="api-metrics-retention"),
    path("metrics/users", PointUsersAPI.as_view(), name="api-metrics-users"),
]
