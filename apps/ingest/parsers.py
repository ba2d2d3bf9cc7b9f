"""The ingestion body parser: JSON, optionally gzip, within the limits of DESIGN.md."""

from django.conf import settings
from rest_framework.parsers import BaseParser

from apps.common.jsonlimits import declared_length, decode_content, loads_strict, read_limited

from .conform import read_json_float, read_json_int


class IngestJSONParser(BaseParser):
    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        meta = parser_context["request"].META
        body = read_limited(
            stream, declared_length=declared_length(meta), limit=settings.INGEST_MAX_BODY_BYTES
        )
        body = decode_content(
            body, encoding=meta.get("HTTP_CONTENT_ENCODING", ""), limit=settings.INGEST_MAX_DECOMPRESSED_BYTES
        )
        # A number out of range refuses only its item (conform), not every event of the batch.
        return loads_strict(body, parse_float=read_json_float, parse_int=read_json_int)
