"""What a screen reader or a keyboard needs from each page's markup, read from the HTML the pages send:
every id once, every id reference resolving, errors announced and tied to their fields, each row's buttons
named for their row, a way past the header, and error pages inside the portal's frame."""

from html.parser import HTMLParser

import pytest

from tests.factories import make_api_key

pytestmark = pytest.mark.django_db

REFERENCES = ("aria-describedby", "aria-labelledby", "aria-controls")


class Markup(HTMLParser):
    """Every start tag of a page, in order, as (tag, attributes)."""

    def __init__(self, html: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {name: value or "" for name, value in attrs}))

    def ids(self) -> list[str]:
        return [attrs["id"] for _, attrs in self.tags if "id" in attrs]

    def with_attr(self, name: str) -> list[tuple[str, dict]]:
        return [(tag, attrs) for tag, attrs in self.tags if name in attrs]


def broken_references(html: str) -> list[str]:
    """Return what a page's id references point at that is not there, and ids used twice."""
    markup = Markup(html)
    ids = markup.ids()
    problems = sorted({f"id {i!r} used {ids.count(i)} times" for i in ids if ids.count(i) > 1})
    for attribute in REFERENCES:
        for tag, attrs in markup.with_attr(attribute):
            missing = [ref for ref in attrs[attribute].split() if ref not in ids]
            if missing:
                problems.append(f"<{tag} name={attrs.get('name')!r}> {attribute} -> missing {missing}")
    for _, attrs in markup.with_attr("for"):
        if attrs["for"] not in ids:
            problems.append(f"<label for={attrs['for']!r}> names no element")
    return problems


@pytest.fixture
def admin_client(client, make_person):
    client.force_login(make_person("admin", "ada"))
    return client


@pytest.fixture
def two_keys():
    make_api_key(service="gateway")
    make_api_key(service="tiles")


@pytest.mark.parametrize(
    "url",
    [
        "/dashboards/?event=search_made&range=custom&start=not-a-time",
        "/dashboards/?analysis=funnel&steps=only_one&window=-5",
        "/dashboards/?analysis=retention&start_event=a&return_event=b&interval=fortnight",
        "/traces/?start=not-a-time&page=0",
        "/users/u1/?start=not-a-time&end=nor-this",
        "/keys/",
        "/account/tokens/",
        "/account/password/",
        "/dashboards/d/",
    ],
)
def test_every_id_is_unique_and_every_reference_resolves(admin_client, two_keys, url):
    response = admin_client.get(url)
    assert response.status_code in (200, 400), url
    assert broken_references(response.content.decode()) == []


def test_refused_forms_tie_their_errors_to_their_fields(admin_client, two_keys):
    pages = {
        "key": admin_client.post("/keys/", {"service": "", "stage": "", "label": "x" * 200}),
        "token": admin_client.post("/account/tokens/", {"label": "x" * 200}),
        "password": admin_client.post("/account/password/", {"old_password": "", "new_password1": "1"}),
        "dashboard": admin_client.post("/dashboards/d/", {"name": ""}),
    }
    for name, response in pages.items():
        assert response.status_code in (200, 400), name
        html = response.content.decode()
        assert broken_references(html) == [], name
        invalid = Markup(html).with_attr("aria-invalid")
        assert invalid, f"{name}: no field says it is invalid"
        for _, attrs in invalid:
            assert attrs.get("aria-describedby"), f"{name}: {attrs.get('name')} does not point at its error"


def test_a_refused_sign_in_is_announced(client, make_person):
    make_person("product", "pia")
    response = client.post("/login/", {"username": "pia", "password": "wrong"})
    errors = [
        attrs for _, attrs in Markup(response.content.decode()).tags if "error" in attrs.get("class", "")
    ]
    assert errors and all(attrs.get("role") == "alert" for attrs in errors)


def test_each_rows_buttons_are_named_for_their_row(admin_client, two_keys):
    from apps.accounts.services import personal_token_create

    user = admin_client.get("/").wsgi_request.user
    token, _ = personal_token_create(user=user, label="a")
    personal_token_create(user=user, label="b")
    for url in ("/keys/", "/account/tokens/"):
        markup = Markup(admin_client.get(url).content.decode())
        buttons = [
            attrs.get("aria-label")
            for tag, attrs in markup.tags
            if tag == "button" and "danger" in attrs.get("class", "")
        ]
        assert len(buttons) >= 2, url
        assert all(buttons) and len(set(buttons)) == len(buttons), f"{url}: {buttons}"
    assert f"Revoke token {token.prefix}" in [
        attrs.get("aria-label")
        for _, attrs in Markup(admin_client.get("/account/tokens/").content.decode()).tags
    ]


def test_the_first_link_skips_to_the_main_content(admin_client):
    markup = Markup(admin_client.get("/").content.decode())
    body = [tag for tag in markup.tags if tag[0] in ("a", "button", "input", "select")]
    tag, attrs = body[0]
    assert (tag, attrs.get("href")) == ("a", "#content")
    assert ("main", "content") in [(tag, attrs.get("id")) for tag, attrs in markup.tags]


@pytest.mark.parametrize("url, status", [("/no-such-page/", 404), ("/dashboards/d/nope/", 404)])
def test_error_pages_keep_the_portals_frame(admin_client, url, status):
    response = admin_client.get(url)
    assert response.status_code == status
    markup = Markup(response.content.decode())
    assert "main" in [tag for tag, _ in markup.tags]
    assert "/" in [attrs.get("href") for tag, attrs in markup.tags if tag == "a"]  # a way back home


def test_a_page_refused_for_a_role_keeps_the_portals_frame(client, make_person):
    client.force_login(make_person("support", "sam"))
    response = client.get("/dashboards/")
    assert response.status_code == 403
    markup = Markup(response.content.decode())
    assert "main" in [tag for tag, _ in markup.tags]
    assert "/" in [attrs.get("href") for tag, attrs in markup.tags if tag == "a"]
