"""Reads of annotations: the ones a chart's time range covers."""

from collections.abc import Iterable
from datetime import datetime

from django.db.models import Case, Q, Value, When, Window
from django.db.models.functions import Least, RowNumber

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
    one page, in one query: while all the ranges together hold at most `limit` of them, those of the whole
    span; beyond, each range's own first `limit` (so that a short chart never loses its markers to the limit
    of a long chart on the same page)."""
    ranges = list(dict.fromkeys(ranges))
    if not ranges:
        return {}
    found = annotations_between(min(s for s, _ in ranges), max(e for _, e in ranges), limit=limit + 1)
    if len(found) > limit:
        found = _firsts_of_ranges(ranges, limit=limit)
    return {(start, end): [a for a in found if start <= a.timestamp <= end][:limit] for start, end in ranges}


def _firsts_of_ranges(ranges: list[tuple[datetime, datetime]], *, limit: int) -> list[Annotation]:
    """Return, oldest first, the annotations among the first `limit` of at least one range (one query).

    Each range numbers its own annotations in time order (a window partitioned by "in the range"); an
    annotation is kept when its best number among the ranges that hold it is within the limit.
    """
    order = ("timestamp", "id")
    outside = Value(limit + 1)
    ranks = []
    for start, end in ranges:
        inside = Q(timestamp__gte=start, timestamp__lte=end)
        held = Case(When(inside, then=Value(True)), default=Value(False))
        rank = Window(RowNumber(), partition_by=[held], order_by=order)
        ranks.append(Case(When(inside, then=rank), default=outside))
    best = Least(*ranks) if len(ranks) > 1 else ranks[0]
    span = Annotation.objects.filter(
        timestamp__gte=min(s for s, _ in ranges), timestamp__lte=max(e for _, e in ranges)
    )
    return list(span.annotate(best_rank=best).filter(best_rank__lte=limit).order_by(*order))
