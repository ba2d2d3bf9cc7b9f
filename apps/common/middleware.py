"""Security headers on every response; answers kept out of caches; JSON errors under /api/; a database
outage answered 503; admin queries kept from handing the database a NUL."""

import json
import logging
from collections.abc import Callable

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.template import loader
from django.urls import reverse
from django.utils.cache import add_never_cache_headers, patch_vary_headers
from rest_framework.response import Response

from apps.common.exceptions import (
    DATABASE_RETRY_AFTER_SECONDS,
    database_timed_out,
    database_unavailable_detail,
)

API_PREFIX = "/api/"
logger = logging.getLogger(__name__)


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


class PrivateAnswersMiddleware:
    """Keep every answer the portal computes out of browser and proxy caches, unless a view said otherwise.

    Pages and read APIs show user IDs, trails, log lines, keys and downloads to whoever is signed in: none
    may be stored or replayed to someone else (`Cache-Control: private, no-store`). An API answer depends on
    the Authorization header too (a token's owner and roles), so it varies on it. Static files never get
    here: WhiteNoise answers them first, with its own caching.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path_info.startswith(API_PREFIX):
            patch_vary_headers(response, ("Authorization",))
        if "Cache-Control" not in response:
            add_never_cache_headers(response)
        return response


class ApiErrorsAsJsonMiddleware:
    """Answer every error under /api/ as JSON `{"detail": ...}`, the API's documented shape.

    DRF's views answer their own errors so; what Django answers before or instead of a view (an address no
    endpoint has, a bad Host header, an unhandled exception, a method a plain view refuses) was an HTML
    page. Its status and headers (Allow, Retry-After, …) are kept. DRF's answers, the browsable API's too,
    are left as negotiated.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not request.path_info.startswith(API_PREFIX)
            or isinstance(response, Response)
            or response.streaming
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        detail = f"{response.status_code} {response.reason_phrase}."
        if response.status_code == 404:
            detail = "No API endpoint has this address; the API is described at /api/docs/."
        response.content = json.dumps({"detail": detail}).encode()
        response["Content-Type"] = "application/json"
        response["Content-Length"] = str(len(response.content))
        return response


class DatabaseUnavailableMiddleware:
    """Answer a request the database could not serve (it refused or lost the connection, or cancelled a
    statement at its timeout) with 503 and Retry-After, saying so: `{"detail": ...}` under /api/, a page
    elsewhere. It was a 500 page, and the session is read from the database, so every page of a signed-in
    person failed so; DRF's views answer their own (apps.common.exceptions), the same way.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, (OperationalError, InterfaceError)):
            return None
        logger.error("database unavailable for %s %s: %s", request.method, request.path_info, exception)
        read = request.method in ("GET", "HEAD", "OPTIONS")
        if request.path_info.startswith(API_PREFIX):
            response = JsonResponse({"detail": database_unavailable_detail(exception, read=read)}, status=503)
        else:
            reason = (
                "It did not answer in time."
                if database_timed_out(exception)
                else "It cannot be reached right now."
            )
            # Rendered without the request: nothing on the page may ask the database again (who is
            # signed in lives there too).
            page = loader.render_to_string("database_unavailable.html", {"reason": reason})
            response = HttpResponse(page, status=503)
        response["Retry-After"] = str(DATABASE_RETRY_AFTER_SECONDS)
        return response
