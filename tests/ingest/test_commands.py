"""`create_service_key` prints the key once, alone on the last line, and stores only its hash."""

import io

import pytest
from django.core.management import CommandError, call_command

from apps.common.secrets import secret_hash as key_hash
from apps.ingest.models import ApiKey

pytestmark = pytest.mark.django_db


def run(*args) -> list[str]:
    out = io.StringIO()
    call_command("create_service_key", *args, stdout=out)
    return out.getvalue().strip().splitlines()


def test_the_key_is_the_last_line_and_only_its_hash_is_stored(api_client):
    lines = run("download-server", "--stage", "prod")

    key = lines[-1]
    stored = ApiKey.objects.get()
    assert key.startswith(f"swk_{stored.prefix}_")
    assert stored.key_hash == key_hash(key)
    assert key not in stored.key_hash
    assert (stored.service.name, stored.stage, stored.can_forward) == ("download-server", "prod", False)
    response = api_client.post(
        "/api/v1/events", {"event": "x"}, format="json", HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert response.status_code == 202


def test_forwarder_keys_carry_the_scope():
    run("log-shipper", "--stage", "prod", "--forwarder")

    assert ApiKey.objects.get().can_forward is True


@pytest.mark.parametrize("name", ["Download Server", "", "x" * 101, "../etc"])
def test_bad_service_names_are_refused(name):
    with pytest.raises(CommandError):
        run(name, "--stage", "prod")
    assert not ApiKey.objects.exists()


def test_a_key_made_by_the_command_is_audited_as_the_command():
    from apps.accounts.models import AuditEntry

    lines = run("download-server", "--stage", "prod")

    entry = AuditEntry.objects.get()
    assert (entry.action, entry.via, entry.target) == ("key_created", "command", ApiKey.objects.get().prefix)
    assert entry.actor_name.startswith("command:")
    assert lines[-1] not in entry.target


def test_a_line_break_after_the_service_name_is_refused():
    # "$" in a regex also matches before a final line break: the name was kept with it, and conform then
    # refused every event of the key.
    with pytest.raises(CommandError, match="lowercase letters"):
        run("download-server\n", "--stage", "prod")
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize("stage", ["pr\tod", "pr\nod", "pr\x07od", "x" * 51, " "])
def test_a_stage_conform_would_refuse_is_refused(stage):
    with pytest.raises(CommandError, match="--stage"):
        run("download-server", "--stage", stage)
    assert not ApiKey.objects.exists()


def test_a_label_too_long_to_store_is_refused_not_a_crash():
    with pytest.raises(CommandError, match="--label"):
        run("download-server", "--stage", "prod", "--label", "x" * 101)
    assert not ApiKey.objects.exists()
