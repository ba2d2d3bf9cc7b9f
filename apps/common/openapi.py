"""OpenAPI pieces the APIs share: the error answers of the read APIs."""

from drf_spectacular.utils import OpenApiResponse, inline_serializer
from rest_framework import serializers

ErrorSchema = inline_serializer("Error", fields={"detail": serializers.CharField()})

# Plain JSON schemas that the hook below names once, as components: a generated client then has one type for
# each instead of a look-alike per operation and status.
_NAMED_SCHEMAS: dict[str, dict] = {}


def named_schema(name: str, schema: dict) -> dict:
    """Return `schema`, which the document will name `name` wherever an answer uses it."""
    _NAMED_SCHEMAS[name] = schema
    return schema


# DRF answers a ValidationError raised with {name: message} as that object.
ParameterErrorsSchema = named_schema(
    "ParameterErrors",
    {
        "type": "object",
        "description": "Each invalid query parameter (or body field), with what is wrong with it.",
        "additionalProperties": {"type": "string"},
        "minProperties": 1,
        "example": {"per_page": "must be a whole number from 1 to 200"},
    },
)

READ_RESPONSES = {
    400: OpenApiResponse(ParameterErrorsSchema, description="A query parameter is invalid."),
    401: OpenApiResponse(ErrorSchema, description="No credentials, or an unknown or revoked personal token."),
    403: OpenApiResponse(ErrorSchema, description="Signed in, but without the role this API needs."),
    429: OpenApiResponse(
        ErrorSchema, description="Over the reads allowed per person (API_READ_RATE_LIMIT); see Retry-After."
    ),
    503: OpenApiResponse(
        ErrorSchema, description="The database or the search backend is unavailable; see Retry-After."
    ),
}


# Headers the portal sends with these answers (DRF's authentication and apps/common/exceptions.py).
_RESPONSE_HEADERS = {
    "401": {
        "WWW-Authenticate": {
            "description": "How to authenticate: `Bearer` with a key or a personal token.",
            "schema": {"type": "string"},
        }
    },
    "429": {
        "Retry-After": {
            "description": "Seconds to wait before sending again.",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
    "503": {
        "Retry-After": {
            "description": "Seconds after which the request may succeed.",
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
}


# DRF negotiates the answer's type before it authenticates, so every portal API (not the foreign-SDK
# endpoints, which answer their SDK's JSON whatever Accept says) can refuse an Accept it cannot meet.
_NOT_ACCEPTABLE = {
    "description": "The Accept header names no type this API answers with (it answers application/json).",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


def document_shared_answers(result: dict, generator, request, public) -> dict:
    """drf-spectacular hook: name the headers that come with 401, 429 and 503 answers in every operation,
    the 406 of every portal API, and each named_schema once, as a component."""
    for path, path_item in result.get("paths", {}).items():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            if path.startswith("/api/v1/"):
                operation["responses"].setdefault("406", _NOT_ACCEPTABLE)
            for status, response in operation.get("responses", {}).items():
                for name, header in _RESPONSE_HEADERS.get(str(status), {}).items():
                    response.setdefault("headers", {}).setdefault(name, header)
                content = response.get("content", {}).get("application/json")
                for name, schema in _NAMED_SCHEMAS.items():
                    if content is not None and content.get("schema") == schema:
                        content["schema"] = {"$ref": f"#/components/schemas/{name}"}
                        result.setdefault("components", {}).setdefault("schemas", {})[name] = schema
    return result
