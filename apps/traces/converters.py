"""URL converters for IDs that services choose: any text, including "/", "..", "?" and "#".

Django's reverse() leaves "/" and "." as they are, so a user ID `../../admin/` made a link the browser
resolved to another page. `to_url` keeps the ID in one path segment: "/" and "%" percent-encoded, and
the dots of an ID that is only dots (browsers treat "..", even as %2E%2E, as the parent); reverse() then
quotes the "%" once more and the server's own decoding undoes that, so `to_python` decodes the rest —
but only a value in exactly the form `to_url` makes: an ID a client quoted once (a literal "a%41") stays.
"""

from urllib.parse import unquote

from django.urls import register_converter


class IdConverter:
    """One ID, always a single path segment in the links the portal makes."""

    regex = ".+"

    def to_python(self, value: str) -> str:
        decoded = unquote(value)
        return decoded if decoded != value and self.to_url(decoded) == value else value

    def to_url(self, value: str) -> str:
        if value in (".", ".."):
            return "%2E" * len(value)
        return value.replace("%", "%25").replace("/", "%2F")


class AnyTextIdConverter(IdConverter):
    """Like IdConverter, but newlines too: an ID that cannot exist still gets the API's JSON 404."""

    regex = r"[\s\S]+"


register_converter(IdConverter, "id")
register_converter(AnyTextIdConverter, "anytext")
