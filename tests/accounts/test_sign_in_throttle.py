"""The sign-in lockout holds against guesses sent at once, and against one address guessing many names."""

import threading
import uuid

import pytest
from django.contrib.auth.backends import ModelBackend
from django.test import Client

from tests.conftest import in_thread

pytestmark = pytest.mark.django_db

WRONG = b"enter a correct username and password"
LOCKED = b"Too many failed sign-ins"


class _Gate:
    """Holds every password check until each of `expected` concurrent sign-ins has either reached a
    password check or been answered without one: the check-then-count window, held open for all."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.checking = 0
        self.answered = 0
        self.condition = threading.Condition()

    def check_reached(self) -> None:
        with self.condition:
            self.checking += 1
            self.condition.notify_all()
            released = self.condition.wait_for(lambda: self.checking + self.answered >= self.expected, 30)
        assert released, "the concurrent sign-ins never all arrived"

    def answered_without_check(self) -> None:
        with self.condition:
            self.answered += 1
            self.condition.notify_all()


class GatedModelBackend(ModelBackend):
    """Django's backend, made to wait at the password check until every concurrent sign-in got that far."""

    gate: _Gate | None = None

    def authenticate(self, request, username=None, password=None, **kwargs):
        if GatedModelBackend.gate is not None:
            GatedModelBackend.gate.check_reached()
        return super().authenticate(request, username=username, password=password, **kwargs)


@pytest.fixture
def gated_sign_in(settings):
    settings.AUTHENTICATION_BACKENDS = [f"{__name__}.GatedModelBackend"]
    yield
    GatedModelBackend.gate = None


def test_guesses_sent_at_once_get_no_more_tries_than_one_at_a_time(make_person, settings, gated_sign_in):
    settings.LOGIN_MAX_FAILURES = 3
    name = f"sam-burst-{uuid.uuid4().hex[:8]}"  # lockouts outlive a test: a name of its own
    make_person("support", name)
    guesses = 10
    gate = GatedModelBackend.gate = _Gate(guesses)
    answers: list[bytes] = []

    def guess() -> None:
        # An address of its own: the address's count is the other lockout, and it outlives a test too.
        content = (
            Client(REMOTE_ADDR="198.51.100.50")
            .post("/login/", {"username": name, "password": "wrong"})
            .content
        )
        answers.append(content)
        if LOCKED in content:
            gate.answered_without_check()

    threads = [in_thread(guess) for _ in range(guesses)]
    for thread in threads:
        thread.join(timeout=60)

    assert len(answers) == guesses
    checked = sum(WRONG in content for content in answers)
    assert checked == settings.LOGIN_MAX_FAILURES, f"{checked} passwords checked in one burst"
    assert sum(LOCKED in content for content in answers) == guesses - settings.LOGIN_MAX_FAILURES


def test_one_address_guessing_many_names_is_stopped(client, make_person, settings):
    settings.LOGIN_MAX_FAILURES = 3
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 6
    address = "198.51.100.23"
    victim = f"sam-spray-{uuid.uuid4().hex[:8]}"
    make_person("support", victim)
    # One password tried against many names: each name stays below its own lockout.
    for n in range(6):
        answer = client.post(
            "/login/", {"username": f"guess-{n}-{victim}", "password": "Summer2026!"}, REMOTE_ADDR=address
        )
        assert WRONG in answer.content

    sprayed = client.post(
        "/login/", {"username": victim, "password": "correct-horse-battery"}, REMOTE_ADDR=address
    )

    assert LOCKED in sprayed.content
    assert "_auth_user_id" not in client.session


def test_an_address_lockout_leaves_other_addresses_and_the_names_own_count_alone(
    client, make_person, settings
):
    settings.LOGIN_MAX_FAILURES = 3
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 2
    victim = f"sam-elsewhere-{uuid.uuid4().hex[:8]}"
    make_person("support", victim)
    for n in range(5):  # the address is locked after two; the victim's name is never counted
        client.post(
            "/login/",
            {"username": victim if n >= 2 else f"x{n}", "password": "wrong"},
            REMOTE_ADDR="198.51.100.24",
        )

    client.post(
        "/login/", {"username": victim, "password": "correct-horse-battery"}, REMOTE_ADDR="203.0.113.9"
    )

    assert "_auth_user_id" in client.session


def test_sign_ins_from_a_shared_address_do_not_lock_it(client, make_person, settings):
    settings.LOGIN_MAX_FAILURES_PER_ADDRESS = 2
    name = f"sam-office-{uuid.uuid4().hex[:8]}"
    make_person("support", name)
    for _ in range(4):  # an office behind one address: people signing in all day
        client.post(
            "/login/", {"username": name, "password": "correct-horse-battery"}, REMOTE_ADDR="192.0.2.80"
        )
        assert "_auth_user_id" in client.session
        client.post("/logout/")


def test_a_lockout_is_logged_once_and_a_hostile_name_cannot_forge_log_lines(client, settings, caplog):
    settings.LOGIN_MAX_FAILURES = 2
    name = f'eve-{uuid.uuid4().hex[:6]}\n{{"level": "info", "message": "ok"}}\x1b[2J'
    with caplog.at_level("WARNING", logger="apps.accounts.forms"):
        for _ in range(5):
            client.post("/login/", {"username": name, "password": "wrong"}, REMOTE_ADDR="198.51.100.60")

    lockouts = [record.getMessage() for record in caplog.records if record.name == "apps.accounts.forms"]
    assert len(lockouts) == 1, lockouts
    assert "sign-ins refused" in lockouts[0] and "\n" not in lockouts[0] and "\x1b" not in lockouts[0]
