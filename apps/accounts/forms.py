"""Sign-in with throttling: repeated failures for one name lock it out for a while."""

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError


class ThrottledAuthenticationForm(AuthenticationForm):
    """Refuse sign-in for LOGIN_LOCKOUT_SECONDS after LOGIN_MAX_FAILURES failures for a username."""

    def clean(self):
        username = (self.cleaned_data.get("username") or "").strip().lower()
        key = f"login-failures:{username}"
        if username and cache.get(key, 0) >= settings.LOGIN_MAX_FAILURES:
            minutes = max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)
            raise ValidationError(
                f"Too many failed sign-ins for this account. Try again in {minutes} minutes.",
                code="throttled",
            )
        try:
            cleaned = super().clean()
        except ValidationError:
            if username:
                cache.add(key, 0, timeout=settings.LOGIN_LOCKOUT_SECONDS)
                try:
                    cache.incr(key)
                except ValueError:  # expired in between
                    cache.set(key, 1, timeout=settings.LOGIN_LOCKOUT_SECONDS)
            raise
        cache.delete(key)
        return cleaned
