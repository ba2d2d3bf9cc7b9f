"""Serve plotly.js as `vendor/plotly.min.js` straight from the installed plotly package.

The browser's plotly.js is then always the one the pinned Python plotly was built with (the figure JSON and
the renderer never drift apart), the repository does not carry a 4.6 MB copy, and nothing is fetched from a
CDN. `runserver`, WhiteNoise (WHITENOISE_USE_FINDERS) and `collectstatic` all find it through this finder.
"""

import importlib.util
from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.checks import Error
from django.core.files.storage import FileSystemStorage

STATIC_PATH = "vendor/plotly.min.js"


def plotly_js_path() -> Path:
    """Return the path of plotly.min.js inside the installed plotly package (without importing plotly)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return Path("plotly-is-not-installed")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"


class PlotlyJsFinder(BaseFinder):
    """A static files finder that knows exactly one file: vendor/plotly.min.js."""

    def check(self, **kwargs) -> list[Error]:
        if not plotly_js_path().is_file():
            return [Error(f"plotly.min.js not found at {plotly_js_path()}", id="dashboards.E001")]
        return []

    def find(self, path: str, find_all: bool = False, **kwargs):
        found = str(plotly_js_path()) if path == STATIC_PATH and plotly_js_path().is_file() else None
        if find_all:
            return [found] if found else []
        return found

    def list(self, ignore_patterns):
        source = plotly_js_path()
        if source.is_file():
            storage = FileSystemStorage(location=str(source.parent))
            storage.prefix = STATIC_PATH.rpartition("/")[0]
            yield source.name, storage
