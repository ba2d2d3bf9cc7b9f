"""The timeline of a trail with 10,000 log lines in one second: points that would sit on one another are
one mark saying how many it stands for; an error is always a mark of its own."""

from apps.traces.timeline import WIDTH, timeline_for
from tests.traces.test_timeline import event


def test_crowded_points_are_merged_and_every_error_keeps_its_own_mark():
    events = [event("tiles", at=i / 10_000, level="info") for i in range(10_000)]
    for i in (17, 5_000, 9_998):
        events[i] = event("tiles", at=i / 10_000, level="error")
    events.append(event("gateway", at=0.5))

    timeline = timeline_for(events)

    errors = [m for m in timeline.marks if m.severity == "error"]
    others = [m for m in timeline.marks if m.severity != "error"]
    assert sorted(m.index for m in errors) == [17, 5_000, 9_998]
    assert len(others) <= WIDTH // 2  # not 9,998 circles on top of one another
    assert sum(m.count for m in timeline.marks) == len(events)  # each event stands behind exactly one mark
    crowded = next(m for m in others if m.count > 1)
    assert f"and {crowded.count - 1} more here" in crowded.label
    assert [m.count for m in others if m.y != others[0].y] == [1]  # the gateway's lone line stays alone
