"""Django middleware giving every request a correlation ID (imports Django only here).

Add ``"observatory.django.CorrelationIdMiddleware"`` near the top of ``MIDDLEWARE``."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import Any

try:
    from asgiref.sync import iscoroutinefunction, markcoroutinefunction  # installed with Django
except ImportError as exc:  # pragma: no cover - only without Django
    raise ImportError("observatory.django needs Django: pip install './observatory[django]'") from exc

from . import correlation
from .wsgi import _ContextIterable

__all__ = ["CorrelationIdMiddleware"]


class CorrelationIdMiddleware:
    """Set the request's correlation ID for the view, on ``request.correlation_id`` and in the response.

    The ID comes from ``X-Correlation-ID``, ``Correlation-ID`` or ``traceparent``, in that order (else a new
    UUID4; see :func:`correlation.from_headers`); the response always carries ``X-Correlation-ID``. Works
    for WSGI and ASGI (sync and async middleware chains). A streaming response's body is produced after
    the view returned, while the server iterates it: the ID is set there too.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        """Handle one request."""
        if self._async:
            return self._acall(request)
        cid = self._assign(request)
        with correlation.use(cid):
            response = self.get_response(request)
        return self._finish(response, cid)

    async def _acall(self, request: Any) -> Any:
        cid = self._assign(request)
        with correlation.use(cid):
            get_response: Callable[[Any], Awaitable[Any]] = self.get_response
            response = await get_response(request)
        return self._finish(response, cid)

    @staticmethod
    def _finish(response: Any, cid: str) -> Any:
        response[correlation.HEADER] = cid
        # A FileResponse reading a file runs no code of the app, and replacing its content would cost it
        # the server's sendfile (wsgi.file_wrapper).
        if getattr(response, "streaming", False) and getattr(response, "file_to_stream", None) is None:
            content = response.streaming_content
            if getattr(response, "is_async", False):
                response.streaming_content = _async_with_id(content, cid)
            else:
                response.streaming_content = _ContextIterable(content, cid)
        return response

    @staticmethod
    def _assign(request: Any) -> str:
        cid = correlation.from_headers(request.headers)
        request.correlation_id = cid
        return cid


async def _async_with_id(content: AsyncIterable[bytes], cid: str) -> AsyncIterator[bytes]:
    """Yield ``content``'s parts, each produced with ``cid`` set (and the consumer's context left alone)."""
    iterator = aiter(content)
    while True:
        with correlation.use(cid):
            try:
                part = await anext(iterator)
            except StopAsyncIteration:
                return
        yield part
