from django.urls import path

from .api import TraceAPI, UserRequestsAPI

urlpatterns = [
    path("traces/<path:correlation_id>", TraceAPI.as_view(), name="api-trace"),
    path("users/<path:user_id>/requests", UserRequestsAPI.as_view(), name="api-user-requests"),
]
