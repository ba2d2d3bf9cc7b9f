"""Sent names inside our own sentences: a name with right-to-left text or bidi controls is isolated, so that
it cannot reorder or reverse the words around it (an unclosed RIGHT-TO-LEFT OVERRIDE in an event name would
otherwise turn the rest of a chart title backwards)."""

import unicodedata
from collections.abc import Iterable

FIRST_STRONG_ISOLATE = "\u2068"
POP_DIRECTIONAL_ISOLATE = "\u2069"
# Right-to-left letters, and the explicit embeddings, overrides and isolates (Unicode bidi classes).
_REORDERING = frozenset({"R", "AL", "RLE", "LRE", "RLO", "LRO", "PDF", "RLI", "LRI", "FSI", "PDI"})
_ISOLATE_INITIATORS = frozenset({"\u2066", "\u2067", FIRST_STRONG_ISOLATE})  # LRI, RLI, FSI


def _unbalanced(text: str) -> tuple[int, int]:
    """Return the PDIs in `text` that close no isolate it opened, and the isolates it leaves open."""
    unmatched = opened = 0
    for char in text:
        if char in _ISOLATE_INITIATORS:
            opened += 1
        elif char == POP_DIRECTIONAL_ISOLATE:
            if opened:
                opened -= 1
            else:
                unmatched += 1
    return unmatched, opened


def isolated(name: str) -> str:
    """Return `name` between FIRST STRONG ISOLATE and POP DIRECTIONAL ISOLATE when it holds text that can
    reorder what follows it; else as it is (left-to-right names are written as sent).

    A PDI of the name's own that closes nothing would close the isolate around it (and let an override
    after it run on), and an isolate the name leaves open would take the closing PDI: each gets one more
    FIRST STRONG ISOLATE before the name, or POP DIRECTIONAL ISOLATE after it."""
    if name.isascii() or not any(unicodedata.bidirectional(c) in _REORDERING for c in name):
        return name
    unmatched, opened = _unbalanced(name)
    return f"{FIRST_STRONG_ISOLATE * (1 + unmatched)}{name}{POP_DIRECTIONAL_ISOLATE * (1 + opened)}"


def clipped(text: str, limit: int) -> str:
    """Return `text` cut to at most `limit` characters, closing the isolates the cut leaves open (a sentence
    cut inside an isolated name would otherwise carry the isolate, and an override in it, into whatever
    follows: a page title's suffix)."""
    if len(text) <= limit:
        return text
    for keep in range(limit, -1, -1):
        head = text[:keep]
        opened = _unbalanced(head)[1]
        if keep + opened <= limit:
            return head + POP_DIRECTIONAL_ISOLATE * opened
    return ""


def isolated_all(names: Iterable[str]) -> list[str]:
    """Return each name `isolated`."""
    return [isolated(name) for name in names]
