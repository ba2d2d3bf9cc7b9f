"""Chart pages, and the API documentation, relax the portal's Content-Security-Policy for one thing: inline
styles, which plotly.js and swagger-ui need.

Plotly.js positions what it draws with `style` attributes and adds its own rules (and its bundled map
library's) in <style> elements it creates; `style-src 'self'` blocks both, leaving broken charts. Swagger-ui
(/api/docs/, drf-spectacular's page) sets inline styles too. So those pages add 'unsafe-inline' to style-src
only. Scripts stay 'self' only, and every other directive stays as strict as the portal's policy. (Page
markup is autoescaped, so no one else can inject a style.)
"""

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"


def with_inline_styles(policy: str) -> str:
    """Return the policy with 'unsafe-inline' added to style-src (made from default-src when absent)."""
    directives = [d.split() for d in policy.split(";") if d.strip()]
    names = [d[0].lower() for d in directives]
    if "style-src" not in names:
        default = next((d[1:] for d in directives if d[0].lower() == "default-src"), ["'self'"])
        directives.append(["style-src", *default])
    for directive in directives:
        if directive[0].lower() == "style-src" and "'unsafe-inline'" not in directive:
            directive.append("'unsafe-inline'")
    return "; ".join(" ".join(d) for d in directives)


def inline_styles_allowed(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Decorate a view whose page draws plotly charts or swagger-ui (see the module docstring)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        response = view(request, *args, **kwargs)
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", "")
        if policy and HEADER not in response.headers:
            response.headers[HEADER] = with_inline_styles(policy)
        return response

    return wrapped
