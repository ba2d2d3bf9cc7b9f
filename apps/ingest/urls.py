from django.urls import path

from .api import BatchIngestView, EventIngestView

urlpatterns = [
    path("events", EventIngestView.as_view(), name="ingest-event"),
    path("batch", BatchIngestView.as_view(), name="ingest-batch"),
]
