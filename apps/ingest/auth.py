"""Service API keys for DRF: `Authorization: Bearer <key>` or `X-Api-Key: <key>`."""

from dataclasses import dataclass

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from .keys import UnknownKey, UnusableKey, api_key_for_secret
from .models import ApiKey


@dataclass(frozen=True)
class ServicePrincipal:
    """The `request.user` of a request made with a service key (not a person)."""

    service: str
    stage: str
    key_prefix: str
    is_authenticated: bool = True
    is_anonymous: bool = False

    def __str__(self) -> str:
        return f"service:{self.service}/{self.stage}"


def _raw_key(request: Request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise exceptions.AuthenticationFailed("Authorization must be 'Bearer <api key>'.")
        return value.strip()
    value = request.META.get("HTTP_X_API_KEY", "").strip()
    return value or None


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[ServicePrincipal, ApiKey] | None:
        raw = _raw_key(request)
        if raw is None:
            return None
        try:
            api_key = api_key_for_secret(raw=raw, now=timezone.now())
        except UnknownKey:
            raise exceptions.AuthenticationFailed("Unknown API key.") from None
        except UnusableKey as dead:
            raise exceptions.PermissionDenied(dead.reason) from None
        return ServicePrincipal(api_key.service.name, api_key.stage, api_key.prefix), api_key

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) when no key was sent.
        return 'Bearer realm="skywatch-ingest"'


class HasServiceKey(BasePermission):
    message = "A service API key is required (Authorization: Bearer <key> or X-Api-Key)."

    def has_permission(self, request: Request, view) -> bool:
        return isinstance(request.auth, ApiKey)


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """Describe service keys in the OpenAPI schema (drf-spectacular finds subclasses on import): either
    header alone authenticates, so each is its own security requirement (alternatives)."""

    target_class = "apps.ingest.auth.ApiKeyAuthentication"
    name = ["ServiceApiKey", "ServiceApiKeyHeader"]

    def get_security_requirement(self, auto_schema) -> list[dict]:
        return [{name: []} for name in self.name]

    def get_security_definition(self, auto_schema) -> list[dict]:
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": "A service key: Authorization: Bearer <key>",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-Api-Key",
                "description": "A service key in its own header, for senders that cannot set Authorization.",
            },
        ]
