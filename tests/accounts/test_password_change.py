"""A person changes their own password: the current one is required, the new one meets the validators, the
browser they use stays signed in while their other sessions end, their personal tokens keep working (the
page says so), the change is audited without the password, and wrong current passwords are throttled as
sign-ins are."""

import logging
import re
import uuid

import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.models import Session
from django.test import Client

from apps.accounts.models import AuditEntry

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"
NEW_PASSWORD = "lantern-orchard-vessel"
PAGE = "/account/password/"
LOCKED = "Too many wrong passwords"


def unique(name: str) -> str:
    # Failure counts live in the cache and outlive a test: a name and an address of each test's own.
    return f"{name}-{uuid.uuid4().hex[:8]}"


def an_address() -> str:
    # One of 131,072 in 198.18.0.0/15 (benchmarking addresses), which no other test uses: a fixed address of
    # another test must never be one these guesses locked.
    n = uuid.uuid4().int % 131_072
    return f"198.{18 + n // 65_536}.{n // 256 % 256}.{n % 256}"


def sign_in(username: str, password: str = PASSWORD, address: str = "198.51.100.7") -> Client:
    browser = Client(REMOTE_ADDR=address)
    browser.post("/login/", {"username": username, "password": password})
    return browser


def signed_in(browser: Client) -> bool:
    return browser.get("/account/tokens/").status_code == 200


def change(browser: Client, old: str = PASSWORD, new: str = NEW_PASSWORD):
    return browser.post(PAGE, {"old_password": old, "new_password1": new, "new_password2": new})


def new_token(browser: Client) -> str:
    answer = browser.post("/account/tokens/", {"label": "notebook"})
    return re.search(r'id="new-key">([^<]+)<', answer.content.decode()).group(1)


def test_the_page_asks_for_the_current_password_and_says_what_happens_to_tokens(make_person):
    name = unique("pia")
    make_person("product", name)

    page = sign_in(name).get(PAGE)

    html = page.content.decode()
    assert page.status_code == 200
    assert 'name="old_password"' in html and 'name="new_password1"' in html and 'name="new_password2"' in html
    assert "signs you out everywhere else" in html
    assert "personal tokens keep working" in html and 'href="/account/tokens/"' in html


def test_anonymous_visitors_are_sent_to_sign_in():
    assert Client().get(PAGE)["Location"].startswith("/login/")


def test_a_changed_password_signs_in_and_the_old_one_does_not(make_person):
    name = unique("pia")
    make_person("product", name)
    browser = sign_in(name)

    answer = change(browser)

    assert answer.status_code == 302 and answer["Location"] == "/account/tokens/"
    assert signed_in(browser)  # this browser stays signed in
    assert signed_in(sign_in(name, NEW_PASSWORD))
    assert not signed_in(sign_in(name, PASSWORD))


def test_the_persons_other_sessions_end_and_other_peoples_do_not(make_person):
    name, other = unique("pia"), unique("kim")
    person = make_person("product", name)
    make_person("product", other)
    laptop, phone = sign_in(name), sign_in(name)
    colleague = sign_in(other)

    change(laptop)

    assert signed_in(laptop)
    assert not signed_in(phone)
    assert signed_in(colleague)
    # Ended, not only refused: the table holds no session of theirs but the one in use.
    theirs = [s for s in Session.objects.all() if s.get_decoded().get(SESSION_KEY) == str(person.pk)]
    assert [s.session_key for s in theirs] == [laptop.session.session_key]


def test_personal_tokens_keep_working_and_the_next_page_says_so(make_person, api_client):
    name = unique("sam")
    make_person("support", name)
    browser = sign_in(name)
    raw = new_token(browser)

    answer = change(browser)
    following = browser.get(answer["Location"])

    assert "Your other sessions were signed out" in following.content.decode()
    assert "personal tokens keep working" in following.content.decode()
    assert api_client.get("/api/v1/traces/no-such", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code == 404


def test_a_wrong_current_password_changes_nothing(make_person):
    name = unique("pia")
    make_person("product", name)
    browser = sign_in(name)

    answer = change(browser, old="not-my-password")

    assert answer.status_code == 200
    assert "Your old password was entered incorrectly" in answer.content.decode()
    assert 'aria-invalid="true"' in answer.content.decode()
    assert signed_in(sign_in(name, PASSWORD))
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(
    "new, refusal",
    [
        ("short1", "too short"),
        ("password123", "too common"),
        ("83749271635", "entirely numeric"),
    ],
)
def test_the_new_password_must_pass_the_validators(make_person, new, refusal):
    name = unique("pia")
    make_person("product", name)
    browser = sign_in(name)

    answer = change(browser, new=new)

    assert answer.status_code == 200
    assert refusal in answer.content.decode()
    assert signed_in(sign_in(name, PASSWORD))


def test_the_new_password_must_be_typed_twice_alike(make_person):
    name = unique("pia")
    make_person("product", name)

    answer = sign_in(name).post(
        PAGE, {"old_password": PASSWORD, "new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD + "x"}
    )

    assert answer.status_code == 200
    assert "didn’t match" in answer.content.decode()


def test_the_change_is_audited_and_the_password_is_written_nowhere(make_person, caplog):
    name = unique("pia")
    person = make_person("product", name)
    browser = sign_in(name, address="198.51.100.23")

    with caplog.at_level(logging.DEBUG):
        change(browser)

    entry = AuditEntry.objects.get()
    assert (entry.actor, entry.actor_name, entry.action, entry.target, entry.via, entry.ip) == (
        person,
        name,
        "password_changed",
        name,
        "page",
        "198.51.100.23",
    )
    assert NEW_PASSWORD not in caplog.text and PASSWORD not in caplog.text
    assert NEW_PASSWORD not in str(entry.__dict__)


def test_wrong_current_passwords_lock_the_form_and_sign_in_for_that_name(make_person, settings):
    settings.LOGIN_MAX_FAILURES = 3
    name = unique("pia")
    make_person("product", name)
    browser = sign_in(name)

    for _ in range(3):
        assert "entered incorrectly" in change(browser, old="guess").content.decode()
    locked = change(browser)  # the right one, now refused

    assert LOCKED in locked.content.decode()
    assert not signed_in(sign_in(name, PASSWORD, address=an_address()))  # a guess here counts there too
    assert not AuditEntry.objects.exists()


def test_wrong_current_passwords_from_one_address_lock_it_whatever_the_account(make_person, settings):
    settings.LOGIN_MAX_FAILURES = 3
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 4
    address = an_address()
    browsers = []
    for _ in range(3):
        name = unique("pia")
        make_person("product", name)
        browsers.append((name, sign_in(name, address=address)))

    for _name, browser in browsers[:2]:
        change(browser, old="guess")
        change(browser, old="guess")
    name, browser = browsers[2]
    locked = change(browser)

    assert "from your address" in locked.content.decode()
    assert signed_in(sign_in(name, PASSWORD, address=an_address()))  # the password did not change


def test_the_right_password_does_not_wipe_an_addresss_other_failures(make_person, settings):
    """As at sign-in: one's own right password must not reset the count of guesses at others'."""
    settings.LOGIN_MAX_FAILURES = 10
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 4
    address = an_address()
    guesser, mine = unique("pia"), unique("kim")
    make_person("product", guesser)
    make_person("product", mine)
    guessing, own = sign_in(guesser, address=address), sign_in(mine, address=address)

    change(guessing, old="guess")
    change(guessing, old="guess")
    assert change(own).status_code == 302
    change(guessing, old="guess")
    change(guessing, old="guess")

    assert "from your address" in change(guessing, old="guess").content.decode()
