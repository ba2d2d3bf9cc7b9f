"""Key management for admins: list with volume, create (shown once), rotate with a grace period, revoke."""

from django.contrib import messages
from django.db import transaction
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
from .services import service_key_create, service_key_revoke, service_key_rotate


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
    with transaction.atomic():
        # Locked, so that a second submit (a double click) waits for the first and then sees it rotated.
        usable = (
            ApiKey.objects.usable(timezone.now()).select_related("service").select_for_update(of=("self",))
        )
        api_key = get_object_or_404(usable, prefix=prefix)
        if api_key.expires_at is not None and api_key.expires_at <= timezone.now() + form.grace_period():
            # Rotated already (a double submit, say), and this would not end it sooner: another successor
            # would be a working key whose secret nobody saw.
            messages.error(
                request,
                f"Key {api_key.prefix} was rotated already; it stops working at "
                f"{api_key.expires_at:%Y-%m-%d %H:%M} UTC.",
            )
            return redirect("key-list")
        successor, raw_key = service_key_rotate(
            api_key=api_key, grace=form.grace_period(), actor=Actor.from_request(request, via="page")
        )
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
