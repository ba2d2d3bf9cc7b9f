"""Personal tokens for the read APIs: `Authorization: Bearer swp_…` acts as the token's owner.

What a token grants (its owner and their roles) comes from a cache of a few seconds (`selectors.py`), so a
call asks the database nothing to authenticate and authorise; `last_used_at` is written once a minute.
"""

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from apps.common.secrets import PERSONAL_TOKEN_KIND, secret_hash

from .selectors import personal_token_grant
from .services import personal_token_touch


class PersonalTokenAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, raw = header.partition(" ")
        raw = raw.strip()
        if scheme.lower() != "bearer" or not raw.startswith(f"{PERSONAL_TOKEN_KIND}_"):
            return None  # not ours: sessions (or nothing) decide
        grant = personal_token_grant(key_hash=secret_hash(raw))
        if grant is None:
            raise exceptions.AuthenticationFailed("Unknown personal token.")
        if grant.revoked:
            raise exceptions.AuthenticationFailed(f"Personal token {grant.prefix} was revoked.")
        personal_token_touch(token_id=grant.token_id, last_used_at=grant.last_used_at, now=timezone.now())
        return grant.user(), grant.token()

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="skywatch"'


class PersonalTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.accounts.auth.PersonalTokenAuthentication"
    name = "PersonalToken"

    def get_security_definition(self, auto_schema) -> dict:
        return {"type": "http", "scheme": "bearer", "description": "A personal token: Bearer swp_…"}
