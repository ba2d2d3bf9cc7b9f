"""IDs that services choose (any text: "/", "%", "..", "?", "#") in the portal's URLs, decoded exactly once.

The server percent-decodes a path once before routing, so `%2F` arrives as "/" and no converter can tell
`a%2Fb` from `a/b`; and reverse() quotes whatever `to_url` returns, so a converter cannot write `%2F`
either. An ID is therefore read as the server decoded it, and links are built by `id_url`: an ID that a
path segment carries faithfully goes in the path, encoded once; one with a "/" (or only dots, which
browsers resolve as "parent" even as %2E%2E) goes in a query parameter behind the segment QUERY_MARKER,
as `/traces/-/?correlation_id=a%2Fb`.

Links made before this encoded "/" and "%" twice (`a%252Fb`) and decoded twice; `legacy_id` recognises that
form, so a page that finds nothing under the literal ID can redirect an old link to its ID.
"""

from collections.abc import Mapping
from urllib.parse import quote, unquote

from django.urls import register_converter, reverse
from django.utils.http import urlencode

# The path segment that says "the ID is in the query string"; an ID that is "-" itself is still "-" when
# the query does not name one.
QUERY_MARKER = "-"
# The pages whose ID can move into the query string, and the parameter it moves to.
QUERY_PARAMETERS = {
    "trace-detail": "correlation_id",
    "trace-surrounding": "correlation_id",
    "user-detail": "user_id",
}


def fits_in_segment(value: str) -> bool:
    """Return whether one path segment carries this ID faithfully (browsers and proxies leave it alone)."""
    return "/" not in value and value not in (".", "..")


class IdConverter:
    """One ID: the path as the server decoded it. A "/" still matches, so links that put one in the path
    (by hand, or before IDs with one moved to the query string) keep working."""

    regex = ".+"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        # reverse() encodes what this returns once. An ID no segment carries gets the old twice-encoded
        # form, which the page redirects (legacy_id): code that still calls reverse() for such an ID makes
        # a link that works, one redirect later. New links come from id_url.
        return value if fits_in_segment(value) else _legacy_to_url(value)


class AnyTextIdConverter(IdConverter):
    """Like IdConverter, but newlines too: an ID that cannot exist still gets the API's JSON 404."""

    regex = r"[\s\S]+"


register_converter(IdConverter, "id")
register_converter(AnyTextIdConverter, "anytext")


def id_url(name: str, value: str, /, **params: object) -> str:
    """Return the link to a page (or the trail API) of one ID, the ID encoded exactly once, with `params`
    as its query string."""
    query = list(params.items())
    if name == "api-trace":
        # The ID is the API path's tail: a "/" encoded once is read back whole (no suffix to confuse).
        # Only an ID of dots stays unreachable from a browser, which resolves it as a parent.
        path = reverse(name, kwargs={"correlation_id": QUERY_MARKER})[: -len(QUERY_MARKER)]
        path += quote(value, safe="")
    elif fits_in_segment(value):
        path = reverse(name, args=[value])
    else:
        path = reverse(name, args=[QUERY_MARKER])
        query.insert(0, (QUERY_PARAMETERS[name], value))
    return f"{path}?{urlencode(query)}" if query else path


def id_from(segment: str, query: Mapping[str, str], name: str) -> str:
    """Return the ID a page's URL names: the path segment, or the query parameter behind QUERY_MARKER (an
    empty one names none: no ID is empty, and no link to one can be made)."""
    if segment == QUERY_MARKER and query.get(name):
        return query[name]
    return segment


def legacy_id(value: str) -> str | None:
    """Return the ID an old twice-encoded link meant, when `value` (decoded once) is in exactly the form
    those links took and means another ID; else None."""
    decoded = unquote(value)
    if decoded != value and _legacy_to_url(decoded) == value:
        return decoded
    return None


def _legacy_to_url(value: str) -> str:
    """The form links took before: "/" and "%" percent-encoded, and an ID of dots as %2E each (reverse()
    then encoded the "%" once more)."""
    if value in (".", ".."):
        return "%2E" * len(value)
    return value.replace("%", "%25").replace("/", "%2F")
