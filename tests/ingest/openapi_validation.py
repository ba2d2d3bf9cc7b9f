"""Check a JSON value against a schema of the portal's OpenAPI document as OpenAPI 3.0.3 reads it.

OpenAPI 3.0 schemas are not JSON Schema: `nullable: true` allows null only beside a `type` in the same
schema object (3.0.3), which is how generated clients and validators read the document. Schemathesis is
more lenient (it allows null wherever `nullable` is written), so these helpers check what it does not.
"""

import json

from jsonschema import Draft7Validator


def served_document(client) -> dict:
    """Return the OpenAPI document the portal serves (the client must be signed in)."""
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def _as_json_schema(node):
    if isinstance(node, list):
        return [_as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _as_json_schema(value) for key, value in node.items() if key != "nullable"}
    if node.get("nullable") is True and "type" in node:
        converted = {"anyOf": [converted, {"type": "null"}]}
    return converted


def schema_errors(document: dict, schema: dict, value) -> list[str]:
    """Return what is wrong with `value` under `schema` (a schema of `document`, $refs into it resolved)."""
    root = {**_as_json_schema(schema), "components": _as_json_schema(document.get("components", {}))}
    validator = Draft7Validator(root, format_checker=Draft7Validator.FORMAT_CHECKER)
    return [f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(value)]


def request_schema(document: dict, path: str, method: str) -> dict:
    """Return the JSON request body schema of an operation."""
    return document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]


def response_schema(document: dict, path: str, method: str, status: int) -> dict:
    """Return the JSON schema of an operation's answer with `status`; fail when it is not documented."""
    responses = document["paths"][path][method]["responses"]
    assert str(status) in responses, f"{method.upper()} {path} does not document {status}"
    return responses[str(status)]["content"]["application/json"]["schema"]
