"""plotly.js is served from the installed plotly package (no copy in the repository, no CDN)."""

from pathlib import Path

import plotly
from django.contrib.staticfiles import finders
from django.core.management import call_command

from apps.dashboards.staticfiles import PlotlyJsFinder, plotly_js_path

PACKAGE_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def test_the_finder_knows_exactly_the_packages_plotly_js():
    finder = PlotlyJsFinder()

    assert finder.find("vendor/plotly.min.js") == str(PACKAGE_JS)
    assert finder.find("vendor/plotly.min.js", find_all=True) == [str(PACKAGE_JS)]
    assert finder.find("vendor/other.js") is None
    assert [(path, storage.prefix) for path, storage in finder.list(None)] == [("plotly.min.js", "vendor")]
    assert finder.check() == []
    assert plotly_js_path() == PACKAGE_JS


def test_the_js_is_the_version_the_python_package_draws_for():
    from plotly.offline import get_plotlyjs_version

    head = PACKAGE_JS.read_text(encoding="utf-8")[:200]
    assert f"plotly.js v{get_plotlyjs_version()}" in head


def test_static_lookup_and_collectstatic_find_it(settings, tmp_path):
    assert finders.find("vendor/plotly.min.js") == str(PACKAGE_JS)

    settings.STATIC_ROOT = tmp_path
    call_command("collectstatic", "--noinput", verbosity=0)

    assert (tmp_path / "vendor" / "plotly.min.js").read_bytes() == PACKAGE_JS.read_bytes()
