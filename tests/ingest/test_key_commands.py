"""Key commands as a script reads them: the key alone on standard output, and no key made when it cannot be
handed over."""

import pytest

from apps.accounts.models import AuditEntry
from apps.common.secrets import secret_hash
from apps.ingest.models import ApiKey

pytestmark = pytest.mark.django_db


def test_create_service_key_prints_only_the_key_on_stdout(run):
    ran = run("create_service_key", "download-server", "--stage", "prod")

    assert ran.status == 0
    key = ran.out.strip()
    assert "\n" not in key  # KEY=$(manage.py create_service_key …) holds the key and nothing else
    assert ApiKey.objects.get().key_hash == secret_hash(key)
    assert "Created key" in ran.err and "not shown again" in ran.err
    assert key not in ran.err


def test_portal_key_makes_no_key_when_the_file_cannot_be_written(run, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")

    ran = run("portal_key", "--file", str(blocker / "portal-key"))

    assert ran.status == 1
    assert "cannot save the key" in ran.message and str(blocker) in ran.message
    assert "no key was made" in ran.message
    assert not ApiKey.objects.exists()  # a working key nobody holds
    assert not AuditEntry.objects.exists()
    assert ran.out == ""


def test_portal_key_prints_only_the_key(run, tmp_path):
    ran = run("portal_key", "--file", str(tmp_path / "key"))

    assert ran.status == 0
    assert ran.out.strip() == (tmp_path / "key").read_text().strip()
    assert "\n" not in ran.out.strip()
