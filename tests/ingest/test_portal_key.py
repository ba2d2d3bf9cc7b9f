"""`manage.py portal_key`: the portal's own key, saved privately and reused while it can send."""

import stat

import pytest
from django.core.management import CommandError, call_command

from apps.accounts.actors import Actor
from apps.ingest.models import ApiKey
from apps.ingest.services import service_key_revoke


def portal_key(tmp_path, capsys, **options) -> str:
    call_command("portal_key", file=str(tmp_path / "keys" / "portal-key"), **options)
    return capsys.readouterr().out.strip().splitlines()[-1]


@pytest.mark.django_db
def test_the_key_is_saved_readable_by_its_owner_only_and_reused(tmp_path, capsys):
    first = portal_key(tmp_path, capsys)
    again = portal_key(tmp_path, capsys)

    saved = tmp_path / "keys" / "portal-key"
    assert again == first
    assert saved.read_text().strip() == first
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert ApiKey.objects.filter(service__name="skywatch-portal").count() == 1
    assert [p.name for p in saved.parent.iterdir()] == ["portal-key"]


@pytest.mark.django_db
def test_a_revoked_key_is_replaced(tmp_path, capsys):
    first = portal_key(tmp_path, capsys)
    service_key_revoke(api_key=ApiKey.objects.get(), actor=Actor.command())

    second = portal_key(tmp_path, capsys)

    assert second != first
    assert (tmp_path / "keys" / "portal-key").read_text().strip() == second


@pytest.mark.django_db
def test_a_saved_key_of_another_stage_is_not_reused(tmp_path, capsys):
    dev = portal_key(tmp_path, capsys)

    prod = portal_key(tmp_path, capsys, stage="prod")

    assert prod != dev
    assert ApiKey.objects.get(stage="prod").service.name == "skywatch-portal"


@pytest.mark.django_db
@pytest.mark.parametrize("stage", ["a\tb", "de\x7fv", "x" * 51, ""])
def test_a_stage_no_event_could_be_sent_with_is_refused(tmp_path, capsys, stage):
    with pytest.raises(CommandError, match="--stage"):
        portal_key(tmp_path, capsys, stage=stage)

    assert not ApiKey.objects.exists()
    assert not (tmp_path / "keys" / "portal-key").exists()
