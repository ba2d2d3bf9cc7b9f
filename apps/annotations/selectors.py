"""Reads of annotations: the ones a chart's time range covers."""

from datetime import datetime

from .models import Annotation

# More markers than this on one chart would hide the data; the API says when the list was cut.
MAX_ANNOTATIONS = 500


def annotations_between(start: datetime, end: datetime, *, limit: int = MAX_ANNOTATIONS) -> list[Annotation]:
    """Return the annotations with start <= timestamp <= end, oldest first, at most `limit`."""
    return list(
        Annotation.objects.filter(timestamp__gte=start, timestamp__lte=end).order_by("timestamp", "id")[
            :limit
        ]
    )
