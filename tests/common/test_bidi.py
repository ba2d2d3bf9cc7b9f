"""Sent names isolated in our sentences (apps/common/bidi.py): what follows a name must stay outside every
embedding, override and isolate the name opens, whatever the name holds and however long it is."""

import html
import re
from urllib.parse import urlencode

import pytest
from django.test import Client

from apps.common.bidi import isolated

pytestmark = pytest.mark.django_db

_OPENERS_EMBED = {"\u202a", "\u202b", "\u202d", "\u202e"}  # LRE RLE LRO RLO
_OPENERS_ISOLATE = {"\u2066", "\u2067", "\u2068"}  # LRI RLI FSI
_PDF, _PDI = "\u202c", "\u2069"


def _depth_after(text: str) -> int:
    """Return how many explicit embeddings/overrides/isolates are still open at the end of `text`, as the
    Unicode bidi algorithm (rules X1-X8) counts them."""
    stack: list[str] = []
    for char in text:
        if char in _OPENERS_EMBED:
            stack.append("e")
        elif char in _OPENERS_ISOLATE:
            stack.append("i")
        elif char == _PDF:
            if stack and stack[-1] == "e":
                stack.pop()
        elif char == _PDI and "i" in stack:
            while stack.pop() != "i":
                pass
    return len(stack)


@pytest.mark.parametrize(
    "name",
    [
        "\u2069\u202eevil",  # a PDI first: it would close the isolate put around the name
        "\u2067\u202eevil",  # an isolate the name leaves open: our PDI would close it instead of ours
        "\u202eevil\u2069\u2069",
    ],
)
def test_nothing_after_an_isolated_name_stays_inside_what_it_opened(name):
    assert _depth_after(isolated(name)) == 0, ascii(isolated(name))


def _page(client: Client, **params) -> str:
    response = client.get("/dashboards/?" + urlencode(params, doseq=True))
    assert response.status_code == 200
    return response.content.decode()


def test_the_page_title_after_a_long_right_to_left_event_name_is_not_reversed(make_person):
    client = Client()
    client.force_login(make_person("product"))
    name = "\u202e" + "\u05d0" * 195  # an override and Hebrew: as long as a name may be (200)
    page = _page(client, event=name, measure="count", range="7d", interval="day", breakdown="service")
    title = html.unescape(re.search(r"<title>(.*?)</title>", page, re.S).group(1))
    suffix = title.index(" · Explore")
    assert _depth_after(title[:suffix]) == 0, ascii(title)
