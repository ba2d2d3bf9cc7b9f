"""The "Create key" form of /keys/ makes one key per form shown: a double submit (the same form sent twice,
one after the other or at once) makes no second key, whose secret nobody would see, and says so."""

import threading
from html.parser import HTMLParser

import pytest
from django.db import connections, transaction
from django.test import Client

from apps.accounts.models import AuditEntry
from apps.ingest.models import ApiKey
from tests.conftest import in_thread, wait_for

FIELDS = {"service": "checkout", "stage": "prod", "label": "deploys"}


class _CreateForm(HTMLParser):
    """The inputs of the page's "Create a key" form (the one posting to /keys/), hidden ones included."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = False
        self.values: dict[str, str] = {}

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        if tag == "form":
            self.inside = attrs.get("action") == "/keys/"
        elif tag == "input" and self.inside and attrs.get("name") and attrs.get("type") != "checkbox":
            self.values[attrs["name"]] = attrs.get("value") or ""

    def handle_endtag(self, tag) -> None:
        if tag == "form":
            self.inside = False


def create_form_data(client: Client) -> dict[str, str]:
    """Open /keys/ and fill in its "Create a key" form, as a browser would send it."""
    page = client.get("/keys/")
    assert page.status_code == 200
    parser = _CreateForm()
    parser.feed(page.content.decode())
    return {**parser.values, **FIELDS}


def waiting_on_locks() -> int:
    with connections["default"].cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND cardinality(pg_blocking_pids(pid)) > 0"
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_a_form_sent_twice_makes_one_key_and_the_second_answer_says_so(client, make_person):
    client.force_login(make_person("admin"))
    data = create_form_data(client)

    first = client.post("/keys/", data)
    assert first.status_code == 200
    created = ApiKey.objects.get(service__name="checkout")
    assert created.prefix in first.content.decode()

    second = client.post("/keys/", data, follow=True)
    assert ApiKey.objects.filter(service__name="checkout").count() == 1
    assert AuditEntry.objects.filter(action=AuditEntry.KEY_CREATED).count() == 1
    text = second.content.decode()
    assert second.status_code == 200
    assert "already" in text and created.prefix in text  # which key the first submit made


@pytest.mark.django_db
def test_a_fresh_form_makes_a_new_key(client, make_person):
    client.force_login(make_person("admin"))
    client.post("/keys/", create_form_data(client))
    client.post("/keys/", create_form_data(client))
    assert ApiKey.objects.filter(service__name="checkout").count() == 2


@pytest.mark.django_db
def test_another_persons_form_token_is_not_accepted(make_person):
    ada, bob = Client(), Client()
    ada.force_login(make_person("admin", "ada"))
    bob.force_login(make_person("admin", "bob"))
    data = create_form_data(ada)
    assert bob.post("/keys/", data).status_code == 400
    assert not ApiKey.objects.filter(service__name="checkout").exists()


@pytest.mark.django_db(transaction=True)
def test_a_double_submit_sent_at_once_makes_one_key(make_person):
    # Both submits are in the server together: each has read the session (with the form's token) before
    # either has stored its key, because the key table is locked until both wait.
    browser = Client()
    browser.force_login(make_person("admin"))
    data = create_form_data(browser)
    tabs = [Client(), Client()]  # the same browser session, one request each
    for tab in tabs:
        tab.cookies = browser.cookies
    locked, release = threading.Event(), threading.Event()

    def hold_the_key_table() -> None:
        with transaction.atomic():
            with connections["default"].cursor() as cursor:
                cursor.execute("LOCK TABLE ingest_apikey IN EXCLUSIVE MODE")
            locked.set()
            release.wait(timeout=60)

    answers: list[int] = []

    def submit(tab: Client) -> int:
        return tab.post("/keys/", data).status_code

    holder = in_thread(hold_the_key_table)
    try:
        assert locked.wait(timeout=30)
        submits = [in_thread(lambda tab=tab: answers.append(submit(tab))) for tab in tabs]
        wait_for(lambda: waiting_on_locks() >= 2, timeout=30, message="both submits to be in the server")
    finally:
        release.set()
        holder.join(timeout=60)
    for submit in submits:
        submit.join(timeout=60)

    assert len(answers) == 2
    assert ApiKey.objects.filter(service__name="checkout").count() == 1
