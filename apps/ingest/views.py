"""Key management for admins: list with volume, create (shown once), rotate with a grace period, revoke.

The create form carries a one-time token issued with the page (signed for the person it was shown to). The
first submit of a form uses it up (remembered in the session) and makes the key; a second submit of the same
form (a double click, a reload of the answer) makes none and names the key the first one made, whose secret
was shown once, in the answer to that first submit. Were two keys made, the first one's secret would be shown
to nobody.
"""

import secrets

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core import signing
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts.actors import Actor
from apps.accounts.permissions import role_required
from apps.accounts.roles import ADMIN

from .forms import KeyCreateForm, KeyRotateForm
from .models import ApiKey
from .selectors import VOLUME_DAYS, keys_with_volume
from .services import KeyNotUsable, service_key_create, service_key_revoke, service_key_rotate

# The create form's one-time tokens: signed for the person the page was shown to (nothing is stored when a
# page is shown), good for a day; a used one is remembered in the session with the prefix of the key it made
# (the last few, for a person with several tabs open).
TOKEN_SALT = "apps.ingest.views.key-create"
TOKEN_MAX_AGE = 24 * 3600
USED_TOKENS = "key-create-used"
KEPT_TOKENS = 20


@require_http_methods(["GET", "HEAD", "POST"])
@never_cache  # the answer to a POST shows a new key once: no cache may keep it
@role_required(ADMIN)
def key_list(request: HttpRequest) -> HttpResponse:
    """List every key with its scope, last use and recent volume; offer creation (once per form shown).

    A form sent without a token (a script's) makes a key each time, as it always did; the page's own form
    always carries one.
    """
    if request.method != "POST":
        return _keys_page(request, KeyCreateForm(initial={"nonce": _token_issue(request)}))
    form = KeyCreateForm(request.POST)
    if not form.is_valid():
        return _keys_page(request, form, status=400)
    data = form.cleaned_data
    nonce = _token_nonce(request, data["nonce"]) if data["nonce"] else None
    if data["nonce"] and nonce is None:  # another person's, forged, or a day old
        again = KeyCreateForm({**request.POST.dict(), "nonce": _token_issue(request)})
        again.is_valid()
        again.add_error(None, "This form has expired. Check the fields and send it again.")
        return _keys_page(request, again, status=400)
    with transaction.atomic():
        claim = _token_claim(request, nonce) if nonce else None
        if claim is None or claim.made is None:
            api_key, raw_key = service_key_create(
                service_name=data["service"],
                stage=data["stage"],
                can_forward=data["can_forward"],
                label=data["label"],
                actor=Actor.from_request(request, via="page"),
            )
            if claim is not None:
                claim.used_for(api_key.prefix)
            created = True
        else:
            created = False
    if created:
        return render(request, "ingest/key_created.html", {"api_key": api_key, "raw_key": raw_key})
    made = ApiKey.objects.select_related("service").filter(prefix=claim.made).first()
    what = f" for {made.service.name} / {made.stage}" if made else ""
    messages.warning(
        request,
        f"This form was sent already: it made the key {claim.made}{what}, and no other. Its secret was shown "
        f"once, in the answer to the first submit; if nobody copied it, revoke {claim.made} and create "
        "another key.",
    )
    return redirect("key-list")


def _keys_page(request: HttpRequest, form: KeyCreateForm, status: int = 200) -> HttpResponse:
    context = {"keys": keys_with_volume(), "form": form, "rotate_form": KeyRotateForm(), "days": VOLUME_DAYS}
    return render(request, "ingest/keys.html", context, status=status)


def _token_issue(request: HttpRequest) -> str:
    """Return a new one-time token for a create form shown to the signed-in person."""
    return signing.TimestampSigner(salt=TOKEN_SALT).sign(f"{request.user.pk}.{secrets.token_urlsafe(18)}")


def _token_nonce(request: HttpRequest, token: str) -> str | None:
    """Return the random part of a token issued to this person within TOKEN_MAX_AGE, else None."""
    try:
        value = signing.TimestampSigner(salt=TOKEN_SALT).unsign(token, max_age=TOKEN_MAX_AGE)
    except signing.BadSignature:  # SignatureExpired included
        return None
    owner, _, nonce = value.partition(".")
    return nonce if owner == str(request.user.pk) and nonce else None


class _Claim:
    """A create form's token as the session store holds it now: `made` is the prefix of the key it made
    already (None: unused, make the key and call `used_for`)."""

    def __init__(self, request: HttpRequest, session, nonce: str) -> None:
        self.request, self.session, self.nonce = request, session, nonce
        self.used = dict(session.get(USED_TOKENS, {}))
        self.made = self.used.get(nonce)
        # The request's copy, loaded before, may be older: it must not save an older state back.
        if request.session.get(USED_TOKENS, {}) != self.used:
            request.session[USED_TOKENS] = self.used

    def used_for(self, prefix: str) -> None:
        self.used[self.nonce] = prefix
        self.used = dict(list(self.used.items())[-KEPT_TOKENS:])
        self.session[USED_TOKENS] = self.request.session[USED_TOKENS] = self.used
        self.session.save()  # in the caller's transaction: committed with the key


def _token_claim(request: HttpRequest, nonce: str) -> _Claim:
    """Return what the session store says of a token now (not as this request loaded it: a concurrent
    submit of the same form may have used it since). Call in a transaction: the person's row stays locked
    until it ends, so that a second submit waits for the first, then sees the token used."""
    get_user_model().objects.select_for_update().filter(pk=request.user.pk).values_list("pk").first()
    return _Claim(request, type(request.session)(session_key=request.session.session_key), nonce)


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
