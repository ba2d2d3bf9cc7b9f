"""API error handling shared by every DRF endpoint, and what a database outage is called."""

import logging

from django.db import InterfaceError, OperationalError
from rest_framework.response import Response
from rest_framework.views import exception_handler

from apps.common.errors import BackendUnavailable

logger = logging.getLogger(__name__)

DATABASE_RETRY_AFTER_SECONDS = 5
SEARCH_RETRY_AFTER_SECONDS = 10
# PostgreSQL's SQLSTATE for a statement cancelled (statement_timeout, or an operator's pg_cancel_backend).
QUERY_CANCELED = "57014"


def database_timed_out(exc: BaseException) -> bool:
    """Return whether a database error is a statement the server cancelled (its statement_timeout), not an
    unreachable or lost server."""
    return getattr(exc.__cause__, "sqlstate", None) == QUERY_CANCELED


def database_unavailable_detail(exc: BaseException, *, read: bool) -> str:
    """Return what to tell a caller whose request the database could not serve: a read is not said to have
    stored nothing (it stores nothing anyway), a write is, so the sender knows to send again."""
    what = "did not answer in time" if database_timed_out(exc) else "is unavailable"
    if read:
        return f"The database {what}. Retry later."
    return f"The database {what}; nothing was stored. Retry later."


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
        request = context.get("request")
        read = request is not None and request.method in ("GET", "HEAD", "OPTIONS")
        return Response(
            {"detail": database_unavailable_detail(exc, read=read)},
            status=503,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
    return exception_handler(exc, context)
