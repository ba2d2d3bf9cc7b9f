"""Who did something: a command run by a uid without a login name is still named in the audit log."""

import getpass
import io
import os
import pwd

import pytest
from django.core.management import call_command

from apps.accounts.actors import Actor
from apps.accounts.models import AuditEntry


@pytest.fixture
def no_login_name(monkeypatch):
    """As in a container run with an arbitrary uid: no USER/LOGNAME, no passwd entry."""
    for name in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.delenv(name, raising=False)

    def unknown(uid: int):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    monkeypatch.setattr(pwd, "getpwuid", unknown)


def test_a_command_actor_is_the_login_name(monkeypatch):
    monkeypatch.setenv("LOGNAME", "ops")

    assert Actor.command().name == "command:ops" == f"command:{getpass.getuser()}"


@pytest.mark.django_db
def test_a_command_run_without_a_login_name_is_audited_under_its_uid(no_login_name):
    call_command("create_service_key", "checkout", "--stage", "prod", stdout=io.StringIO())

    assert AuditEntry.objects.get().actor_name == f"command:uid {os.getuid()}"
