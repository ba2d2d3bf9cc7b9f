"""Reads of annotations: the ones a chart's time range covers."""

from collections.abc import Iterable
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


def annotations_of_ranges(
    ranges: Iterable[tuple[datetime, datetime]], *, limit: int = MAX_ANNOTATIONS
) -> dict[tuple[datetime, datetime], list[Annotation]]:
    """Return the annotations of each (start, end) range, as annotations_between would, for the charts of
    one page: one query when all the ranges together hold at most `limit` of them, else one per range (so
    that a short chart never loses its markers to the limit of a long chart on the same page)."""
    ranges = list(dict.fromkeys(ranges))
    if not ranges:
        return {}
    found = annotations_between(min(s for s, _ in ranges), max(e for _, e in ranges), limit=limit + 1)
    if len(found) > limit:
        return {bounds: annotations_between(*bounds, limit=limit) for bounds in ranges}
    return {(start, end): [a for a in found if start <= a.timestamp <= end] for start, end in ranges}
