from django.urls import path

from .api import PointUsersAPI, SeriesAPI

urlpatterns = [
    path("metrics/series", SeriesAPI.as_view(), name="api-metrics-series"),
    path("metrics/users", PointUsersAPI.as_view(), name="api-metrics-users"),
]
