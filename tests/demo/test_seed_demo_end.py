"""`seed_demo --end`: an end the portal cannot hold the traffic for is refused up front,
naming the option, with nothing stored (not a partial seed, a traceback, or every event clamped to now)."""

from datetime import timedelta

import pytest
from django.core.management import CommandError
from django.utils import timezone

from apps.ingest.models import RawEvent
from tests.demo.conftest import seed

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "end",
    [
        pytest.param((timezone.now() + timedelta(days=30)).isoformat(), id="a month ahead"),
        pytest.param("9999-12-31T23:59:00Z", id="year 9999"),
        pytest.param("1970-01-02T00:00:00Z", id="1970"),
        pytest.param("2000-01-03T00:00:00Z", id="the window starts before 2000"),
        pytest.param("0001-01-01T00:00:00Z", id="year 1"),
    ],
)
def test_an_end_the_portal_cannot_hold_is_refused_naming_end_and_nothing_is_stored(end):
    with pytest.raises(CommandError, match="--end"):
        seed(end=end, days=7, users=20)

    assert not RawEvent.objects.exists()


def test_an_end_a_minute_ahead_is_still_accepted(db):
    output = seed(end=(timezone.now() + timedelta(minutes=1)).isoformat(), days=1, users=5)

    assert " stored" in output and RawEvent.objects.exists()
    assert not RawEvent.objects.filter(notes__icontains="clamped").exists()
