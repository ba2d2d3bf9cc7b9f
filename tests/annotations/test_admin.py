"""Admins list and edit annotations in /admin/; nobody else gets in."""

from datetime import UTC, datetime

import pytest
from django.contrib.admin.models import LogEntry

from apps.annotations.models import Annotation
from apps.annotations.services import create_annotation

pytestmark = pytest.mark.django_db


@pytest.fixture
def annotation():
    return create_annotation(
        service="checkout",
        stage="prod",
        text="deploy v2.14",
        timestamp=datetime(2026, 11, 30, 14, 5, tzinfo=UTC),
    )


def test_an_admin_lists_annotations(client, make_person, annotation):
    client.force_login(make_person("admin"))

    response = client.get("/admin/annotations/annotation/")

    assert response.status_code == 200
    assert "deploy v2.14" in response.content.decode()


def test_an_admin_edits_an_annotation_and_the_change_is_recorded(client, make_person, annotation):
    admin_user = make_person("admin")
    client.force_login(admin_user)
    url = f"/admin/annotations/annotation/{annotation.pk}/change/"

    response = client.post(
        url,
        {
            "text": "deploy v2.14.1 (rolled back at 14:20)",
            "timestamp_0": "2026-11-30",
            "timestamp_1": "14:05:00",
            "service": "checkout",
            "stage": "prod",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    annotation.refresh_from_db()
    assert annotation.text == "deploy v2.14.1 (rolled back at 14:20)"
    assert LogEntry.objects.get(object_id=str(annotation.pk)).user == admin_user


def test_an_admin_deletes_an_annotation(client, make_person, annotation):
    client.force_login(make_person("admin"))

    response = client.post(f"/admin/annotations/annotation/{annotation.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not Annotation.objects.exists()


@pytest.mark.parametrize("role", ["support", "product"])
def test_other_roles_cannot_reach_or_change_annotations_in_the_admin(client, make_person, annotation, role):
    client.force_login(make_person(role))
    url = f"/admin/annotations/annotation/{annotation.pk}/change/"

    assert client.get("/admin/annotations/annotation/").status_code == 302  # to the admin's login
    response = client.post(url, {"text": "changed", "service": "x", "stage": ""})

    assert response.status_code == 302
    annotation.refresh_from_db()
    assert annotation.text == "deploy v2.14"
