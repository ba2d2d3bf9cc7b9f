"""Writes of annotations."""

from datetime import datetime
from typing import Any

from .models import Annotation


def create_annotation(
    *, service: str, text: str, timestamp: datetime, stage: str = "", **extra: Any
) -> Annotation:
    """Store one annotation; `extra` may carry `key_prefix` (which key posted it). Other keys are refused."""
    unknown = set(extra) - {"key_prefix"}
    if unknown:
        raise TypeError(f"unknown annotation fields: {', '.join(sorted(unknown))}")
    if timestamp.tzinfo is None:
        raise ValueError("timestamp must be aware (UTC in storage)")
    return Annotation.objects.create(service=service, text=text, timestamp=timestamp, stage=stage, **extra)
