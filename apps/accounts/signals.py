"""Forget cached personal-token grants when what they hold changes: the token, its owner, the owner's roles.

Changes made through the ORM's model methods send these signals; bulk `QuerySet.update()`s do not, and are
noticed when the grant expires (PERSONAL_TOKEN_CACHE_SECONDS).
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete

from .models import PersonalToken
from .services import personal_tokens_forget

# Saves that change nothing a token grants.
_HARMLESS_USER_FIELDS = frozenset({"last_login", "password"})


def _user_saved(sender, instance, created: bool, update_fields=None, **kwargs) -> None:
    if created or (update_fields is not None and set(update_fields) <= _HARMLESS_USER_FIELDS):
        return
    personal_tokens_forget(user_ids=[instance.pk])


def _token_changed(sender, instance: PersonalToken, **kwargs) -> None:
    if kwargs.get("created"):
        return
    personal_tokens_forget(key_hashes=[instance.key_hash])


def _memberships_changed(sender, instance, action: str, reverse: bool, pk_set=None, **kwargs) -> None:
    if not reverse:  # user.groups.add/remove/set/clear(...)
        if action in ("post_add", "post_remove", "post_clear"):
            personal_tokens_forget(user_ids=[instance.pk])
    elif action in ("post_add", "post_remove") and pk_set:  # group.user_set.add/remove(...)
        personal_tokens_forget(user_ids=pk_set)
    elif action == "pre_clear":  # group.user_set.clear(): afterwards nobody is left to name
        _group_members_forget(instance)


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
