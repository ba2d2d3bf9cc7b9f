"""Plain WSGI middleware that gives every request a correlation ID and echoes it as X-Correlation-ID."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import correlation

__all__ = ["ENVIRON_KEY", "CorrelationMiddleware"]

ENVIRON_KEY = "observatory.correlation_id"

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class CorrelationMiddleware:
    """Wrap a WSGI app: pick the request's correlation ID, set it while the app runs, add the header.

    The ID comes from ``X-Correlation-ID``, ``Correlation-ID`` or ``traceparent``, in that order (see
    :func:`correlation.from_headers`), and is also stored in ``environ["observatory.correlation_id"]``. Any
    ``X-Correlation-ID`` header set by the app is replaced, and the previous context value is restored
    after the request.
    """

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Handle one request (WSGI entry point)."""
        cid = correlation.from_environ(environ)
        environ[ENVIRON_KEY] = cid
        header = correlation.HEADER.lower()

        def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers = [(k, v) for k, v in headers if k.lower() != header]
            headers.append((correlation.HEADER, cid))
            if exc_info is None:
                return start_response(status, headers)
            return start_response(status, headers, exc_info)

        with correlation.use(cid):
            result = self.app(environ, _start_response)
        if isinstance(result, list | tuple):
            return result  # already fully produced; nothing runs later
        # Generators run while the server iterates, after __call__ returned: keep the ID set there too.
        return _ContextIterable(result, cid)


class _ContextIterable:
    def __init__(self, result: Iterable[bytes], cid: str) -> None:
        self._result = result
        self._iterator: Iterator[bytes] | None = None
        self._cid = cid

    def __iter__(self) -> _ContextIterable:
        return self

    def __next__(self) -> bytes:
        with correlation.use(self._cid):
            if self._iterator is None:
                self._iterator = iter(self._result)
            return next(self._iterator)

    def close(self) -> None:
        """Close the app's iterable, as the WSGI server requires, with the ID still set."""
        close = getattr(self._result, "close", None)
        if close is not None:
            with correlation.use(self._cid):
                close()
