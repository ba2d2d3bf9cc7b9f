from django.urls import path

from . import converters  # noqa: F401  (registers the id and anytext converters)
from .api import TraceAPI, UserRequestsAPI

urlpatterns = [
    path("traces/<anytext:correlation_id>", TraceAPI.as_view(), name="api-trace"),
    path("users/<anytext:user_id>/requests", UserRequestsAPI.as_view(), name="api-user-requests"),
]
