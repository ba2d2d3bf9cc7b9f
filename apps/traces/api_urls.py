from django.urls import path, register_converter

from .api import TraceAPI, UserRequestsAPI


class AnyTextConverter:
    """Like `path`, but newlines too: an ID that cannot exist still gets the API's JSON 404, not a page."""

    regex = r"[\s\S]+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(AnyTextConverter, "anytext")

urlpatterns = [
    path("traces/<anytext:correlation_id>", TraceAPI.as_view(), name="api-trace"),
    path("users/<anytext:user_id>/requests", UserRequestsAPI.as_view(), name="api-user-requests"),
]
