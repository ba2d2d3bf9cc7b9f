"""Dashboards reads: what the explorer's pickers offer."""

import pytest

from apps.dashboards import selectors

pytestmark = pytest.mark.django_db


def test_picker_options_come_from_the_data(aggregate_events):
    aggregate_events(
        [
            {"event": "search_made", "properties": {"plan": "pro", "n_results": 3, "nested": {"x": 1}}},
            {"event": "download_started", "properties": {"size_mb": 2.5, "ok": True}},
        ]
    )

    options = selectors.explorer_options()

    assert options.events == ["download_started", "search_made"]
    assert options.numeric_props == ["n_results", "size_mb"]  # booleans are not numbers
    assert options.properties == ["n_results", "nested", "ok", "plan", "size_mb"]
