"""Errors that more than one app raises or answers."""


class BackendUnavailable(Exception):
    """The search backend could not be reached."""
