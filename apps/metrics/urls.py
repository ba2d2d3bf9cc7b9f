from django.urls import path

from .api import SeriesAPI

urlpatterns = [path("metrics/series", SeriesAPI.as_view(), name="api-metrics-series")]
