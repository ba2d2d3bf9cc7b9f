"""The demo generator alone (no database): repeatable, valid for conform, with the habits it promises."""

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from apps.demo.traffic import SERVICES, demo_items, demo_plan
from apps.ingest.conform import SendContext, conform_event

END = datetime(2026, 11, 30, 15, 30, tzinfo=UTC)


def items_of(**options) -> list[tuple[str, dict]]:
    return list(demo_items(demo_plan(**{"seed": 3, "days": 14, "users": 120, "end": END, **options})))


def test_the_same_seed_yields_the_same_items_and_another_seed_others():
    assert items_of() == items_of()
    assert items_of(seed=4) != items_of()


def test_every_item_conforms_for_its_services_own_key():
    received = END + timedelta(minutes=1)
    refused = []
    for service, item in items_of(days=3):
        context = SendContext(service=service, stage="prod", can_forward=False, received_at=received)
        conformed = conform_event(item, context)
        if not conformed.ok:
            refused.append((service, item, conformed.errors))
        else:
            assert conformed.event["service"] == service
    assert refused == []


def test_weekly_users_come_mostly_on_one_weekday_and_daily_users_most_days():
    received = END + timedelta(minutes=1)
    days_of = defaultdict(set)
    for service, item in items_of(days=28, users=150):
        if item.get("event") == "search_made":
            moment = conform_event(
                item, SendContext(service=service, stage="prod", can_forward=False, received_at=received)
            ).event["timestamp"]
            days_of[item["user_id"]].add(moment.date())
    busiest_weekday_share = [
        Counter(day.weekday() for day in days).most_common(1)[0][1] / len(days)
        for days in days_of.values()
        if len(days) >= 4
    ]

    # Some users are on a weekly rhythm (nearly all their visits on one weekday), some near daily (15+ days).
    assert sum(share >= 0.75 for share in busiest_weekday_share) >= 10
    assert sum(len(days) >= 15 for days in days_of.values()) >= 8


def test_all_six_services_send_and_the_window_is_respected():
    items = items_of(days=2)
    received = END + timedelta(minutes=1)
    moments = [
        conform_event(
            item, SendContext(service=s, stage="prod", can_forward=False, received_at=received)
        ).event["timestamp"]
        for s, item in items
    ]

    assert {service for service, _ in items} == set(SERVICES)
    assert END - timedelta(days=2) <= min(moments) and max(moments) <= END


@pytest.mark.parametrize("options", [{"days": 0}, {"users": 0}])
def test_a_plan_needs_a_day_and_a_user(options):
    with pytest.raises(ValueError, match="days and users"):
        demo_plan(**{"seed": 1, "days": 3, "users": 3, "end": END, **options})
