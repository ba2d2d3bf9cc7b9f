"""Annotations in a real browser: plotly draws the line and the marker, and hostile text stays text."""

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.annotations.services import create_annotation
from tests.conftest import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOSTILE = "<img src=x onerror=alert('xss-annotation')>"


def test_the_explorer_draws_an_annotation_and_shows_its_text_as_text(
    live_server, browser_page, make_person, aggregate_events, artifacts_dir
):
    now = timezone.now()
    aggregate_events(
        [
            {
                "service": "checkout",
                "event": "search_made",
                "timestamp": (now - timedelta(days=d)).isoformat(),
            }
            for d in (0, 1, 2, 4)
        ]
    )
    create_annotation(service="checkout", text=f"deploy v2 {HOSTILE}", timestamp=now - timedelta(days=3))
    make_person("product", "pia")
    page = browser_page
    sign_in(page, live_server.url, "pia")

    page.goto(f"{live_server.url}/dashboards/?event=search_made&range=7d&interval=day")
    page.wait_for_function(
        "() => { const p = document.querySelector('.js-plotly-plot'); return p && p.data; }"
    )
    drawn = page.evaluate(
        """() => {
            const p = document.querySelector('.js-plotly-plot');
            return {
                traces: p.data.map(t => t.yaxis || 'y'),
                lines: (p.layout.shapes || []).filter(s => s.type === 'line').length,
                markers: p.querySelectorAll('.overplot .xy9 .point').length,
            };
        }"""
    )
    box = page.locator(".overplot .xy9 .point").bounding_box()
    page.mouse.move(
        box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    )  # plotly's drag layer is on top
    page.wait_for_selector(".hoverlayer text")
    hover = page.evaluate("document.querySelector('.hoverlayer').textContent")
    page.screenshot(path=str(artifacts_dir / "annotation-explorer.png"), full_page=True)

    assert drawn == {"traces": ["y", "y9"], "lines": 1, "markers": 1}
    assert f"checkout: deploy v2 {HOSTILE}" in hover
    assert page.dialogs == []  # the hostile text never ran
    assert page.console_errors == []
