"""Sign-in with throttling: repeated failures for one name lock it out for a while, on every sign-in page
(the portal's and the admin's)."""

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from apps.common.shortcut_cache import cache_count, cache_forget, cached


class LoginThrottleMixin:
    """Refuse sign-in for LOGIN_LOCKOUT_SECONDS after LOGIN_MAX_FAILURES failures for a username."""

    def clean(self):
        username = (self.cleaned_data.get("username") or "").strip().lower()
        key = f"login-failures:{username}"
        if username and (cached(key) or 0) >= settings.LOGIN_MAX_FAILURES:
            minutes = max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)
            raise ValidationError(
                f"Too many failed sign-ins for this account. Try again in {minutes} minutes.",
                code="throttled",
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            # Only a wrong password counts: not the right one refused for another reason (a non-staff
            # person on the admin's sign-in page).
            if username and self.user_cache is None:
                cache_count(key, timeout=settings.LOGIN_LOCKOUT_SECONDS)
            raise
        # Only a sign-in resets the count: a form refused before any password was checked (a blank one)
        # comes here too, and must not wipe the failures before it.
        if self.user_cache is not None:
            cache_forget([key])
        return cleaned


class ThrottledAuthenticationForm(LoginThrottleMixin, AuthenticationForm):
    """The portal's sign-in page."""


class ThrottledAdminAuthenticationForm(LoginThrottleMixin, AdminAuthenticationForm):
    """/admin/login/: the same count, so that the admin's page is not a way around the lockout."""


class PersonalTokenForm(forms.Form):
    label = forms.CharField(max_length=100, required=False)
