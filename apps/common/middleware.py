"""Security headers on every response; admin queries kept from handing the database a NUL."""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.urls import reverse


class ContentSecurityPolicyMiddleware:
    """Add settings.CONTENT_SECURITY_POLICY unless a view set its own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if settings.CONTENT_SECURITY_POLICY:
            response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response


class AdminQueryNulMiddleware:
    """Refuse an admin URL whose query holds a NUL with a 400.

    Django admin hands list-filter and ordering values to the database as they come, and PostgreSQL text
    cannot hold a NUL, so such a URL was a 500. The portal's own pages check their parameters themselves.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # "%00" is the only way a NUL reaches a query string: one substring test for every other request.
        if "%00" in request.META.get("QUERY_STRING", "") and request.path.startswith(reverse("admin:index")):
            return HttpResponseBadRequest(
                "A query parameter holds a NUL character.", content_type="text/plain"
            )
        return self.get_response(request)
