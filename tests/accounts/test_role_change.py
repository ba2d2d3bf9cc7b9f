"""A role is a group: taking a person out of the admin group in /admin/ takes the admin's powers away from
their live session and tokens at once, as putting them in it gives those powers."""

import re

import pytest
from django.contrib.auth.models import Group
from django.test import Client

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-battery"


def sign_in(username: str) -> Client:
    browser = Client()
    browser.post("/login/", {"username": username, "password": PASSWORD})
    return browser


def change_roles_in_the_admin(admin: Client, person, roles: list[str], *, staff: bool, superuser: bool):
    """Post the admin's change form for `person` as an admin would: the groups changed, the two status boxes
    as they are ticked."""
    form = {
        "username": person.username,
        "first_name": "",
        "last_name": "",
        "email": "",
        "is_active": "on",
        "groups": [str(Group.objects.get(name=role).pk) for role in roles],
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": person.date_joined.strftime("%Y-%m-%d"),
        "date_joined_1": person.date_joined.strftime("%H:%M:%S"),
        "_save": "Save",
    }
    if staff:
        form["is_staff"] = "on"
    if superuser:
        form["is_superuser"] = "on"
    answer = admin.post(f"/admin/auth/user/{person.pk}/change/", form)
    assert answer.status_code == 302, re.findall(
        r'class="errorlist[^"]*">(.*?)</ul>', answer.content.decode()
    )


def test_an_admin_moved_to_support_in_the_admin_loses_the_admins_powers_at_once(make_person):
    make_person("admin", "ada-root")
    former = make_person("admin", "ben-demoted")
    ben = sign_in("ben-demoted")
    assert ben.get("/keys/").status_code == 200

    # The admin changes Ben's group and leaves the status boxes as the form showed them.
    change_roles_in_the_admin(sign_in("ada-root"), former, ["support"], staff=True, superuser=True)

    assert ben.get("/keys/").status_code in (302, 403)  # admins' key pages
    assert ben.get("/admin/").status_code == 302  # sent to the admin's sign-in
    assert ben.get("/dashboards/").status_code == 403  # product's pages
    assert ben.get("/traces/").status_code == 200  # support's, which Ben now has
    former.refresh_from_db()
    assert (former.is_staff, former.is_superuser) == (False, False)


def test_a_person_put_in_the_admin_group_in_the_admin_becomes_an_admin(make_person):
    make_person("admin", "ada-root")
    person = make_person("support", "cat-promoted")

    change_roles_in_the_admin(sign_in("ada-root"), person, ["admin"], staff=False, superuser=False)

    assert sign_in("cat-promoted").get("/admin/").status_code == 200
    person.refresh_from_db()
    assert (person.is_staff, person.is_superuser) == (True, True)


def test_a_superuser_outside_every_group_keeps_their_flags_when_given_a_role(make_person, django_user_model):
    django_user_model.objects.create_superuser("root", password=PASSWORD)  # createsuperuser's kind
    root = django_user_model.objects.get(username="root")

    root.groups.add(Group.objects.get(name="support"))

    root.refresh_from_db()
    assert (root.is_staff, root.is_superuser) == (True, True)
