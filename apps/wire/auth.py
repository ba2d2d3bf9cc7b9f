"""DRF authentication for foreign SDKs: the service key where each format puts it, under the rules of
`ApiKeyAuthentication` (`request.user` a ServicePrincipal, `request.auth` the ApiKey)."""

import base64
import binascii
import re

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication
from rest_framework.request import Request

from apps.ingest.auth import ServicePrincipal
from apps.ingest.keys import UnknownKey, UnusableKey, api_key_for_secret
from apps.ingest.models import ApiKey

from . import posthog, segment
from .body import json_body
from .keys import ConflictingKeys


class _WireKeyAuthentication(BaseAuthentication):
    realm = ""
    # Where the format puts the key, said when a request has none.
    missing_key = ""

    def raw_key(self, request: Request) -> str | None:
        raise NotImplementedError

    def refuse_unknown(self) -> exceptions.APIException:
        return exceptions.AuthenticationFailed("Unknown API key.")

    def refuse_unusable(self, reason: str) -> exceptions.APIException:
        return exceptions.PermissionDenied(reason)

    def authenticate(self, request: Request) -> tuple[ServicePrincipal, ApiKey]:
        try:
            raw = self.raw_key(request)
        except ConflictingKeys:
            raise exceptions.AuthenticationFailed("This request names two different keys.") from None
        if raw is None:
            raise exceptions.NotAuthenticated(self.missing_key)
        try:
            api_key = api_key_for_secret(raw=raw, now=timezone.now())
        except UnknownKey:
            raise self.refuse_unknown() from None
        except UnusableKey as dead:
            raise self.refuse_unusable(dead.reason) from None
        return ServicePrincipal(api_key.service.name, api_key.stage, api_key.prefix), api_key

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) when no key or a bad key was sent.
        return self.realm


class PostHogKeyAuthentication(_WireKeyAuthentication):
    """The key as posthog SDKs send it: `api_key` or `token` in the body, or on each event."""

    realm = 'api_key realm="skywatch-posthog"'
    missing_key = "A service key is required: send it as api_key (or token) in the body."

    def raw_key(self, request: Request) -> str | None:
        return posthog_capture(request).key

    def refuse_unusable(self, reason: str) -> exceptions.APIException:
        # posthog SDKs know one auth failure, 401 (a project token is valid or it is not).
        return exceptions.AuthenticationFailed(reason)


class PostHogFlagsKeyAuthentication(PostHogKeyAuthentication):
    """The key of a feature-flag request: `token` (posthog-node, posthog-js) or `api_key` (posthog-python)."""

    missing_key = "A service key is required: send it as token (or api_key) in the body."

    def raw_key(self, request: Request) -> str | None:
        try:
            return posthog.flags_key(json_body(request, posthog_encodings=True))
        except posthog.CaptureError as exc:
            raise exceptions.ParseError(str(exc)) from None


# PostHog's check of a token in a path (BaseRemoteConfigAPIView.check_token): anything else is a 400.
_PATH_TOKEN = re.compile(r"[a-zA-Z0-9_-]{1,200}")


class PostHogPathKeyAuthentication(PostHogKeyAuthentication):
    """The key in the path, where posthog-js asks for its remote config (`/array/<key>/config`). An unknown,
    revoked or expired key is a 404, as PostHog answers for a token it has no project of: what is found
    there is the key's config."""

    def raw_key(self, request: Request) -> str | None:
        token = request.parser_context["kwargs"]["token"]
        if not _PATH_TOKEN.fullmatch(token):
            raise exceptions.ParseError("Invalid token")
        return token

    def refuse_unknown(self) -> exceptions.APIException:
        return exceptions.NotFound()

    def refuse_unusable(self, reason: str) -> exceptions.APIException:
        return exceptions.NotFound()


class SegmentWriteKeyAuthentication(_WireKeyAuthentication):
    """The write key as the Basic-auth user (password empty), else `writeKey` in the body.

    When both are sent (analytics-python does), the header's is the one checked; the body's is never stored.
    A revoked or expired key is 403, as on /api/v1.
    """

    realm = 'Basic realm="skywatch-segment"'
    missing_key = "A service key is required: send it as the Basic-auth user (empty password) or as writeKey."

    def raw_key(self, request: Request) -> str | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            try:
                return segment.write_key(json_body(request))
            except segment.TrackingError as exc:
                raise exceptions.ParseError(str(exc)) from None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic" or not value.strip():
            raise exceptions.AuthenticationFailed("Authorization must be 'Basic <base64 of writeKey:>'.")
        try:
            user, _, _password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise exceptions.AuthenticationFailed("Basic credentials are not base64 of UTF-8 text.") from None
        return user or None


class OtlpBearerAuthentication(_WireKeyAuthentication):
    """The key as OTLP exporters are configured to send it: `Authorization: Bearer <key>` (a header in
    OTEL_EXPORTER_OTLP_HEADERS, or a Collector's `headers`). A revoked or expired key is 403."""

    realm = 'Bearer realm="skywatch-otlp"'
    missing_key = "A service key is required: send it as 'Authorization: Bearer <key>'."

    def raw_key(self, request: Request) -> str | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise exceptions.AuthenticationFailed("Authorization must be 'Bearer <service key>'.")
        return value.strip()


def posthog_capture(request: Request) -> posthog.Capture:
    """Return the capture request the body holds; 400 when it holds none."""
    try:
        return posthog.unpack(json_body(request, posthog_encodings=True))
    except posthog.CaptureError as exc:
        raise exceptions.ParseError(str(exc)) from None


class SegmentWriteKeyScheme(OpenApiAuthenticationExtension):
    """Describe the Segment write key in the OpenAPI schema (drf-spectacular finds subclasses on import)."""

    target_class = "apps.wire.auth.SegmentWriteKeyAuthentication"
    name = "SegmentWriteKey"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "http",
            "scheme": "basic",
            "description": "A service key as the Basic-auth user, password empty (or writeKey in the body).",
        }


class OtlpBearerScheme(OpenApiAuthenticationExtension):
    """Describe the OTLP endpoints' key in the OpenAPI schema."""

    target_class = "apps.wire.auth.OtlpBearerAuthentication"
    name = "OtlpServiceKey"

    def get_security_definition(self, auto_schema) -> dict:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A service key: Authorization: Bearer <key> (OTEL_EXPORTER_OTLP_HEADERS).",
        }
