"""Logging filters for what the portal ships into its own events."""

import logging


class WarningsOnlyFrom(logging.Filter):
    """Drop records below WARNING from the named loggers (and their children); keep everything else.

    The portal ships its own log lines to itself: the pipeline's task chatter ("task succeeded") about
    processing those lines would be shipped, processed and logged again, without end.
    """

    def __init__(self, loggers: list[str], name: str = "") -> None:
        super().__init__(name)
        self.prefixes = tuple(loggers)

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep the record unless it is chatter from one of the loggers."""
        if record.levelno >= logging.WARNING:
            return True
        return not any(record.name == p or record.name.startswith(p + ".") for p in self.prefixes)


class AsOneWarningLine(logging.Filter):
    """Log a logger's records as one warning line, without their traceback: for refusals anyone can cause
    (a Host header the portal does not serve), which Django logs as errors with a traceback each, and which
    the portal would ship into its own events as errors."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Lower the record to WARNING and drop its traceback; keep it."""
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        record.exc_info = record.exc_text = None
        return True
