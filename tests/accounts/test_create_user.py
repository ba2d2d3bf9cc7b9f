"""`manage.py create_user` makes a user in one role group."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command


@pytest.mark.django_db
@pytest.mark.parametrize("role", ["support", "product", "admin"])
def test_create_user_puts_the_user_in_its_role_group(role):
    call_command("create_user", "ada", "--role", role, "--password", "correct-horse-battery")

    user = get_user_model().objects.get(username="ada")
    assert list(user.groups.values_list("name", flat=True)) == [role]
    assert user.check_password("correct-horse-battery")
    assert user.is_staff is (role == "admin")


@pytest.mark.django_db
def test_role_groups_exist_after_migrations():
    from django.contrib.auth.models import Group

    assert set(Group.objects.values_list("name", flat=True)) >= {"support", "product", "admin"}


@pytest.mark.django_db
def test_an_existing_user_is_not_overwritten_without_replace():
    call_command("create_user", "ada", "--role", "support", "--password", "correct-horse-battery")

    with pytest.raises(CommandError, match="already exists"):
        call_command("create_user", "ada", "--role", "admin", "--password", "another-long-pass")

    user = get_user_model().objects.get(username="ada")
    assert user.check_password("correct-horse-battery")
    assert not user.is_staff


@pytest.mark.django_db
def test_replace_resets_password_and_role():
    call_command("create_user", "ada", "--role", "support", "--password", "correct-horse-battery")

    call_command("create_user", "ada", "--role", "product", "--password", "another-long-pass", "--replace")

    user = get_user_model().objects.get(username="ada")
    assert user.check_password("another-long-pass")
    assert list(user.groups.values_list("name", flat=True)) == ["product"]


@pytest.mark.django_db
def test_a_weak_password_is_refused():
    with pytest.raises(CommandError, match="password refused"):
        call_command("create_user", "ada", "--role", "support", "--password", "123")

    assert not get_user_model().objects.filter(username="ada").exists()


def test_an_unknown_role_is_refused():
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("create_user", "ada", "--role", "root", "--password", "correct-horse-battery")


@pytest.mark.django_db
@pytest.mark.parametrize("username", ["x" * 151, "a\x00b", "", "ada lovelace", "ada/1"])
def test_a_username_the_admin_would_refuse_is_refused_clearly(username):
    with pytest.raises(CommandError, match="username refused"):
        call_command("create_user", username, "--role", "support", "--password", "correct-horse-battery")

    assert not get_user_model().objects.exists()


@pytest.mark.django_db
def test_a_password_read_from_standard_input_stays_off_the_command_line(monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO("correct-horse-battery\n"))

    call_command("create_user", "ada", "--role", "product", "--password-stdin")

    assert get_user_model().objects.get(username="ada").check_password("correct-horse-battery")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("arguments", "refusal"),
    [
        (["--password-stdin"], "held no password"),
        (["--password-stdin", "--password", "correct-horse-battery"], "not allowed with"),
        ([], "one of the arguments --password --password-stdin is required"),
    ],
)
def test_a_missing_or_doubled_password_is_refused_and_nothing_created(monkeypatch, arguments, refusal):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    with pytest.raises(CommandError, match=refusal):
        call_command("create_user", "ada", "--role", "product", *arguments)

    assert not get_user_model().objects.filter(username="ada").exists()
