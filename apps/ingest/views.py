"""Key management for admins: list with volume, create (shown once), rotate with a grace period, revoke."""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from apps.accounts.actors import Actor
from apps.accounts.permissions import role_required
from apps.accounts.roles import ADMIN

from .forms import KeyCreateForm, KeyRotateForm
from .models import ApiKey
from .selectors import VOLUME_DAYS, keys_with_volume
from .services import KeyNotUsable, service_key_create, service_key_revoke, service_key_rotate


@never_cache  # the answer to a POST shows a new key once: no cache may keep it
@role_required(ADMIN)
def key_list(request: HttpRequest) -> HttpResponse:
    """List every key with its scope, last use and recent volume; offer creation."""
    form = KeyCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        api_key, raw_key = service_key_create(
            service_name=data["service"],
            stage=data["stage"],
            can_forward=data["can_forward"],
            label=data["label"],
            actor=Actor.from_request(request, via="page"),
        )
        return render(request, "ingest/key_created.html", {"api_key": api_key, "raw_key": raw_key})
    context = {"keys": keys_with_volume(), "form": form, "rotate_form": KeyRotateForm(), "days": VOLUME_DAYS}
    return render(request, "ingest/keys.html", context, status=400 if form.errors else 200)


@require_POST
@never_cache
@role_required(ADMIN)
def key_rotate(request: HttpRequest, prefix: str) -> HttpResponse:
    """Make a successor key (shown once); the old one keeps working for the chosen grace period."""
    form = KeyRotateForm(request.POST)
    if not form.is_valid():
        return redirect("key-list")
    api_key = get_object_or_404(ApiKey.objects.usable(timezone.now()), prefix=prefix)
    try:
        successor, raw_key = service_key_rotate(
            api_key=api_key, grace=form.grace_period(), actor=Actor.from_request(request, via="page")
        )
    except KeyNotUsable as refused:  # rotated already (a double submit), or revoked meanwhile
        reason = str(refused)
        messages.error(request, f"{reason[:1].upper()}{reason[1:]}.")
        return redirect("key-list")
    api_key.refresh_from_db(fields=["expires_at"])  # as the rotation set it, for the page to say
    return render(
        request, "ingest/key_created.html", {"api_key": successor, "raw_key": raw_key, "rotated": api_key}
    )


@require_POST
@role_required(ADMIN)
def key_revoke(request: HttpRequest, prefix: str) -> HttpResponse:
    """Revoke a key at once: its next request gets 403."""
    api_key = get_object_or_404(ApiKey, prefix=prefix)
    service_key_revoke(api_key=api_key, actor=Actor.from_request(request, via="page"))
    return redirect("key-list")
