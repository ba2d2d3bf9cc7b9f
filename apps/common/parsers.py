"""DRF's default JSON parser, capped like every other body the portal reads."""

from django.conf import settings
from rest_framework.parsers import BaseParser

from .jsonlimits import declared_length, loads_strict, read_limited


class BoundedJSONParser(BaseParser):
    """Parse JSON bodies of at most DATA_UPLOAD_MAX_MEMORY_SIZE bytes (413 beyond), refusing NaN."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        meta = parser_context["request"].META
        body = read_limited(
            stream, declared_length=declared_length(meta), limit=settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        )
        return loads_strict(body)
