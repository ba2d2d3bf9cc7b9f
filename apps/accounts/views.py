"""A person's own account: personal tokens (create, shown once; revoke) and password."""

from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from .actors import Actor
from .forms import PersonalTokenForm, ThrottledPasswordChangeForm
from .passwords import password_change_own
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


@method_decorator(require_http_methods(["GET", "HEAD", "POST"]), name="dispatch")
class PasswordChangeView(auth_views.PasswordChangeView):
    """Change one's own password: the current one first (throttled as sign-ins are), then the new one twice.
    This browser stays signed in; the person's other sessions end; their personal tokens keep working."""

    form_class = ThrottledPasswordChangeForm
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("tokens")  # where their tokens are, which the message below points at

    def get_form_kwargs(self) -> dict:
        return {**super().get_form_kwargs(), "request": self.request}  # the address a guess comes from

    def form_valid(self, form: ThrottledPasswordChangeForm) -> HttpResponse:
        password_change_own(
            actor=Actor.from_request(self.request, via="page"),
            user=form.user,
            password=form.cleaned_data["new_password1"],
            session_key=self.request.session.session_key,
        )
        # This session, moved to a new key and to the new password's hash, keeps the person signed in.
        update_session_auth_hash(self.request, form.user)
        messages.success(
            self.request,
            "Password changed. Your other sessions were signed out; your personal tokens keep working: "
            "revoke below any you do not recognise.",
        )
        return HttpResponseRedirect(self.get_success_url())
