"""Reads for key management: keys with their recent volume, in two queries."""

from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from .models import ApiKey, RawEvent

VOLUME_DAYS = 7


def keys_with_volume() -> list[ApiKey]:
    """Return every key (newest first per service) with `volume`: events it sent in the last 7 days, and
    `usable`: whether it authenticates now (only those can be rotated)."""
    keys = list(ApiKey.objects.select_related("service").order_by("service__name", "stage", "-created_at"))
    now = timezone.now()
    since = now - timedelta(days=VOLUME_DAYS)
    volume = dict(
        RawEvent.objects.filter(received_at__gte=since, api_key__isnull=False)
        .values_list("api_key")
        .annotate(n=Count("pk"))
        .values_list("api_key", "n")
    )
    for key in keys:
        key.volume = volume.get(key.pk, 0)
        key.usable = key.is_usable(now)
    return keys
