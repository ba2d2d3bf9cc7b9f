"""Health probes."""

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from .health import readiness


@require_GET
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200 while the process is alive; checks nothing else."""
    return JsonResponse({"status": "ok"})


@require_GET
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Answer 200 when database, broker and search backend answer, else 503 naming what is down."""
    results = readiness()
    down = sorted(name for name, result in results.items() if not result.ok)
    body = {
        "status": "unavailable" if down else "ok",
        "down": down,
        "checks": {name: {"ok": r.ok, "detail": r.detail} for name, r in results.items()},
    }
    return JsonResponse(body, status=503 if down else 200)
