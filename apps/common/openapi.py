"""OpenAPI pieces the APIs share: the error answers of the read APIs."""

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorSchema = inline_serializer("Error", fields={"detail": serializers.CharField()})

# DRF answers a ValidationError raised with {name: message} as that object.
ParameterErrorsSchema = {
    "type": "object",
    "description": "Each invalid query parameter, with what is wrong with it.",
    "additionalProperties": {"type": "string"},
    "minProperties": 1,
    "example": {"per_page": "must be a whole number from 1 to 200"},
}

READ_RESPONSES = {
    400: OpenApiResponse(ParameterErrorsSchema, description="A query parameter is invalid."),
    401: OpenApiResponse(ErrorSchema, description="No credentials, or an unknown or revoked personal token."),
    403: OpenApiResponse(ErrorSchema, description="Signed in, but without the role this API needs."),
    503: OpenApiResponse(
        ErrorSchema, description="The database or the search backend is unavailable; see Retry-After."
    ),
}
