"""Personal tokens for the read APIs: `Authorization: Bearer swp_…` acts as the token's owner."""

from datetime import timedelta

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from apps.common.secrets import PERSONAL_TOKEN_KIND, secret_hash

from .models import PersonalToken

TOUCH_EVERY = timedelta(minutes=1)


class PersonalTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, raw = header.partition(" ")
        raw = raw.strip()
        if scheme.lower() != "bearer" or not raw.startswith(f"{PERSONAL_TOKEN_KIND}_"):
            return None  # not ours: sessions (or nothing) decide
        token = PersonalToken.objects.select_related("user").filter(key_hash=secret_hash(raw)).first()
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Unknown personal token.")
        if token.revoked_at is not None:
            raise exceptions.AuthenticationFailed(f"Personal token {token.prefix} was revoked.")
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at > TOUCH_EVERY:
            PersonalToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="skywatch"'


class PersonalTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.accounts.auth.PersonalTokenAuthentication"
    name = "PersonalToken"

    def get_security_definition(self, auto_schema) -> dict:
        return {"type": "http", "scheme": "bearer", "description": "A personal token: Bearer swp_…"}
