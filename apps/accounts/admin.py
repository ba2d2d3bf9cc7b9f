from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db import transaction
from django.http import HttpRequest, HttpResponse

from .actors import Actor
from .models import AuditEntry
from .passwords import password_reset_done


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ("at", "actor_name", "action", "target", "via", "ip")
    list_filter = ("action", "via")
    search_fields = ("actor_name", "=target")
    date_hierarchy = "at"
    readonly_fields = ("at", "actor", "actor_name", "action", "target", "via", "ip")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


# Django's UserAdmin is registered on import of django.contrib.auth.admin (above): replaced by the one below.
admin.site.unregister(get_user_model())


@admin.register(get_user_model())
class PortalUserAdmin(UserAdmin):
    """Django's user admin, with a password set for someone ending their sessions and tokens (audited)."""

    def user_change_password(self, request: HttpRequest, id: str, form_url: str = "") -> HttpResponse:
        """Django's page; once it has stored a new password (or none), end the person's sessions and personal
        tokens. The page's form saves the password itself, so the stored hash says whether it did: one
        transaction for both, so no password is set without its consequences."""
        with transaction.atomic():
            person = self.get_object(request, unquote(id))
            response = super().user_change_password(request, id, form_url)
            if person is not None and request.method == "POST" and self._stored(person) != person.password:
                # An admin resetting their own password works on in the session Django moved to it.
                keep = request.session.session_key if person.pk == request.user.pk else None
                password_reset_done(
                    actor=Actor.from_request(request, via="admin"), user=person, keep_session_key=keep
                )
        return response

    @staticmethod
    def _stored(person) -> str | None:
        return type(person)._default_manager.filter(pk=person.pk).values_list("password", flat=True).first()
