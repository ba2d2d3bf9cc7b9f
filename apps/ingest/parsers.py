"""The ingestion body parser: JSON, optionally gzip, within the limits of DESIGN.md."""

from django.conf import settings
from rest_framework.parsers import BaseParser

from apps.common.jsonlimits import declared_length, decode_content, loads_strict, read_limited


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
        return loads_strict(body)
