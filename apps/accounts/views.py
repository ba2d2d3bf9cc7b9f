"""A person's own personal tokens: create (shown once) and revoke."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from .forms import PersonalTokenForm
from .services import personal_token_create, personal_token_revoke


@require_http_methods(["GET", "HEAD", "POST"])
@never_cache  # the answer to a POST shows a new token once: no cache may keep it
@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    """List the signed-in person's tokens and create one on POST (its secret is shown once)."""
    form = PersonalTokenForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        token, raw = personal_token_create(user=request.user, label=form.cleaned_data["label"])
        return render(request, "accounts/token_created.html", {"token": token, "raw": raw})
    context = {"tokens": request.user.personal_tokens.all(), "form": form}
    return render(request, "accounts/tokens.html", context, status=400 if form.is_bound else 200)


@require_POST
@login_required
def token_revoke(request: HttpRequest, prefix: str) -> HttpResponse:
    personal_token_revoke(user=request.user, prefix=prefix)
    return redirect("tokens")
