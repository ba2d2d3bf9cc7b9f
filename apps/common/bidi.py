"""Sent names inside our own sentences: a name with right-to-left text or bidi controls is isolated, so that
it cannot reorder or reverse the words around it (an unclosed RIGHT-TO-LEFT OVERRIDE in an event name would
otherwise turn the rest of a chart title backwards)."""

import unicodedata
from collections.abc import Iterable

FIRST_STRONG_ISOLATE = "\u2068"
POP_DIRECTIONAL_ISOLATE = "\u2069"
# Right-to-left letters, and the explicit embeddings, overrides and isolates (Unicode bidi classes).
_REORDERING = frozenset({"R", "AL", "RLE", "LRE", "RLO", "LRO", "PDF", "RLI", "LRI", "FSI", "PDI"})


def isolated(name: str) -> str:
    """Return `name` between FIRST STRONG ISOLATE and POP DIRECTIONAL ISOLATE when it holds text that can
    reorder what follows it; else as it is (left-to-right names are written as sent)."""
    if name.isascii() or not any(unicodedata.bidirectional(c) in _REORDERING for c in name):
        return name
    return f"{FIRST_STRONG_ISOLATE}{name}{POP_DIRECTIONAL_ISOLATE}"


def isolated_all(names: Iterable[str]) -> list[str]:
    """Return each name `isolated`."""
    return [isolated(name) for name in names]
