"""Health probes: /healthz is liveness only, /readyz names what is down (and why, to admins only)."""

from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from apps.accounts.permissions import has_role
from apps.accounts.roles import ADMIN

from .readiness import readiness


@require_safe
@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200 while the process is alive; checks nothing else."""
    return JsonResponse({"status": "ok"})


@require_safe
@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    """Answer 200 when database, broker and search backend answer, else 503 naming what is down.

    A degraded service (a yellow Elasticsearch cluster: every search and write still succeeds) keeps the
    portal ready: 200, status "degraded", named under `degraded`. Anyone (a load balancer) learns which
    check failed or is degraded; only admins see the details, which name hosts and cluster health.
    """
    results = readiness()
    down = sorted(name for name, result in results.items() if not result.ok)
    degraded = sorted(name for name, result in results.items() if result.ok and result.degraded)
    try:
        with_detail = has_role(request.user, ADMIN)
    except DatabaseError:  # who is signed in is read from the database: down, no one is shown details
        with_detail = False
    checks = {
        name: {"ok": result.ok, **({"detail": result.detail} if with_detail else {})}
        for name, result in results.items()
    }
    status = "unavailable" if down else "degraded" if degraded else "ok"
    body = {"status": status, "down": down, "degraded": degraded, "checks": checks}
    return JsonResponse(body, status=503 if down else 200)
