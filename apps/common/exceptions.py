"""API error handling shared by every DRF endpoint."""

import logging

from django.db import InterfaceError, OperationalError
from rest_framework.response import Response
from rest_framework.views import exception_handler

from apps.common.errors import BackendUnavailable

logger = logging.getLogger(__name__)

DATABASE_RETRY_AFTER_SECONDS = 5
SEARCH_RETRY_AFTER_SECONDS = 10


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """Answer 503 with Retry-After when the database or the search backend is unreachable; otherwise DRF's
    usual answers."""
    if isinstance(exc, BackendUnavailable):
        logger.error("search backend unavailable: %s", exc)
        return Response(
            {"detail": "The search backend is unavailable. Retry later."},
            status=503,
            headers={"Retry-After": str(SEARCH_RETRY_AFTER_SECONDS)},
        )
    if isinstance(exc, (OperationalError, InterfaceError)):
        logger.error("database unavailable: %s", exc)
        return Response(
            {"detail": "The database is unavailable; nothing was stored. Retry later."},
            status=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    return exception_handler(exc, context)
