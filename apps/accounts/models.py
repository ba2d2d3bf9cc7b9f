"""The audit log: who opened which user's trail or page, every key action and every password set. Written
once, never edited."""

from django.conf import settings
from django.db import models


class AuditEntry(models.Model):
    TRAIL_VIEWED = "trail_viewed"
    USER_VIEWED = "user_viewed"
    KEY_CREATED = "key_created"
    KEY_ROTATED = "key_rotated"
    KEY_REVOKED = "key_revoked"
    REQUESTS_SEARCHED = "requests_searched"
    USER_PURGED = "user_purged"
    RAW_EVENT_VIEWED = "raw_event_viewed"
    PASSWORD_CHANGED = "password_changed"
    PASSWORD_RESET = "password_reset"
    ACTIONS = [
        (TRAIL_VIEWED, "opened a request trail"),
        (USER_VIEWED, "opened a user's requests"),
        (KEY_CREATED, "created an API key"),
        (KEY_ROTATED, "rotated an API key"),
        (KEY_REVOKED, "revoked an API key"),
        (REQUESTS_SEARCHED, "searched requests"),
        (USER_PURGED, "purged a user's data"),
        (RAW_EVENT_VIEWED, "opened a raw event (admin)"),
        (PASSWORD_CHANGED, "changed their own password"),
        (PASSWORD_RESET, "set a person's password (their sessions and tokens ended)"),
    ]

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text too, so the entry still names the person after their account is deleted.
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=20, choices=ACTIONS)
    target = models.CharField(max_length=300)
    via = models.CharField(max_length=10, help_text="page, api, admin or command")
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-at"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor_name} {self.action} {self.target}"


class PersonalToken(models.Model):
    """A person's token for the read APIs (scripts, notebooks): same roles as their session. Hash only."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="personal_tokens"
    )
    prefix = models.CharField(max_length=16, unique=True)
    key_hash = models.CharField(max_length=64, unique=True)
    label = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"
