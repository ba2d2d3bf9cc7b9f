"""Forget cached personal-token grants when what they hold changes: the token, its owner, the owner's roles;
end a deactivated person's sessions and tokens.

Changes made through the ORM's model methods send these signals; bulk `QuerySet.update()`s do not, and are
noticed when the grant expires (PERSONAL_TOKEN_CACHE_SECONDS).
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete

from .models import PersonalToken
from .roles import ADMIN
from .services import personal_tokens_forget, user_credentials_end

# Saves that change nothing a token grants.
_HARMLESS_USER_FIELDS = frozenset({"last_login", "password"})


def _user_saved(sender, instance, created: bool, update_fields=None, **kwargs) -> None:
    if created or (update_fields is not None and set(update_fields) <= _HARMLESS_USER_FIELDS):
        return
    personal_tokens_forget(user_ids=[instance.pk])
    if not instance.is_active:
        user_credentials_end(user_id=instance.pk)


def _token_changed(sender, instance: PersonalToken, **kwargs) -> None:
    if kwargs.get("created"):
        return
    personal_tokens_forget(key_hashes=[instance.key_hash])


def _memberships_changed(sender, instance, action: str, reverse: bool, pk_set=None, **kwargs) -> None:
    if not reverse:  # user.groups.add/remove/set/clear(...)
        if action == "pre_clear":
            instance._was_admin = instance.groups.filter(name=ADMIN).exists()
        if action in ("post_add", "post_remove") and _admin_group_pk() in (pk_set or ()):
            _admin_flags_follow([instance.pk], is_admin=action == "post_add", user=instance)
        elif action == "post_clear" and getattr(instance, "_was_admin", False):
            _admin_flags_follow([instance.pk], is_admin=False, user=instance)
        if action in ("post_add", "post_remove", "post_clear"):
            personal_tokens_forget(user_ids=[instance.pk])
    elif action in ("post_add", "post_remove") and pk_set:  # group.user_set.add/remove(...)
        if instance.name == ADMIN:
            _admin_flags_follow(pk_set, is_admin=action == "post_add")
        personal_tokens_forget(user_ids=pk_set)
    elif action == "pre_clear":  # group.user_set.clear(): afterwards nobody is left to name
        if instance.name == ADMIN:
            _admin_flags_follow(list(instance.user_set.values_list("pk", flat=True)), is_admin=False)
        _group_members_forget(instance)


def _admin_group_pk() -> int | None:
    return Group.objects.filter(name=ADMIN).values_list("pk", flat=True).first()


def _admin_flags_follow(user_ids, *, is_admin: bool, user=None) -> None:
    """Give the people joining the admin group Django's staff and superuser flags, and take them from those
    leaving it, as `user_create` does: /admin/ and every role check follow those flags, so a person moved
    out of the admin group in /admin/ with the boxes left ticked stayed an admin in all but name. Only
    the admin group moves them: a superuser outside every group (createsuperuser's) keeps theirs."""
    changed = (
        get_user_model()
        .objects.filter(pk__in=list(user_ids))
        .exclude(is_staff=is_admin, is_superuser=is_admin)
    )
    for person in changed:
        person.is_staff = person.is_superuser = is_admin
        person.save(update_fields=["is_staff", "is_superuser"])  # post_save: their tokens' grants are dropped
    if user is not None:  # the caller's copy too, or its next save() would write the old flags back
        user.is_staff = user.is_superuser = is_admin


def _group_changed(sender, instance: Group, **kwargs) -> None:
    if not kwargs.get("created"):
        _group_members_forget(instance)


def _group_members_forget(group: Group) -> None:
    personal_tokens_forget(user_ids=list(group.user_set.values_list("pk", flat=True)))


def connect() -> None:
    """Connect the receivers (called once from AccountsConfig.ready)."""
    user_model = get_user_model()
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="accounts.grants.user_saved")
    post_save.connect(_token_changed, sender=PersonalToken, dispatch_uid="accounts.grants.token_saved")
    post_delete.connect(_token_changed, sender=PersonalToken, dispatch_uid="accounts.grants.token_deleted")
    m2m_changed.connect(
        _memberships_changed, sender=user_model.groups.through, dispatch_uid="accounts.grants.memberships"
    )
    post_save.connect(_group_changed, sender=Group, dispatch_uid="accounts.grants.group_saved")
    pre_delete.connect(_group_changed, sender=Group, dispatch_uid="accounts.grants.group_deleted")
