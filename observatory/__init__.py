"""Client library for SkyWatch Portal: ship metric events and log lines, propagate correlation IDs.

Usage: ``obs = observatory.Tracker(); obs.track("search_made", {"query": q, "user_id": user.id})``.
"""

# Keep this module free of a top-level ``logging`` name: importing ``observatory.logging`` rebinds
# the attribute ``logging`` on this package.
from . import correlation
from ._version import __version__
from .tracker import Delivery, Tracker, flush, get_tracker, log, set_tracker, shutdown, track

__all__ = [
    "Delivery",
    "Tracker",
    "__version__",
    "correlation",
    "flush",
    "get_tracker",
    "log",
    "set_tracker",
    "shutdown",
    "track",
]
