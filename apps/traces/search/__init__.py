"""Trace search behind one interface: Elasticsearch when configured, else the database.

Only `elasticsearch.py` in this package imports the Elasticsearch client; everything else, management
commands included, goes through `get_trace_backend()`.
"""

from functools import cache

from django.conf import settings
from django.utils.module_loading import import_string

from .base import TraceBackend


@cache
def _backend_for(dotted_path: str) -> TraceBackend:
    return import_string(dotted_path)()


def get_trace_backend() -> TraceBackend:
    """Return the backend named by settings.TRACE_BACKEND (one instance per process and setting)."""
    return _backend_for(settings.TRACE_BACKEND)
