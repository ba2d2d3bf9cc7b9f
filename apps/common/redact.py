"""Credentials never leave in text: the user info of every URL the portal prints is cut out.

A search or broker URL may carry `user:password@`; error messages, probe answers and log lines (which the
portal ships into its own events) must show where it failed to connect, never with what.
"""

import logging
import re

# scheme://user:password@host — the user info ends at the last "@" before the path. The scheme's length is
# bounded so that a long run of scheme characters costs linear time, not quadratic (every position of
# "a.a.a…" would scan to its end).
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]{0,63}://)[^/?#\s@]*(?:@[^/?#\s@]*)*@")
REDACTED = "***"


def redact_text(text: str) -> str:
    """Return `text` with the user info of every URL in it replaced by ***."""
    if "@" not in text or "://" not in text:  # the common case costs a scan or two
        return text
    return _USERINFO.sub(lambda match: f"{match['scheme']}{REDACTED}@", text)


class RedactCredentialsFilter(logging.Filter):
    """Cut URL user info out of a record's message and exception text before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place and keep it."""
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True
