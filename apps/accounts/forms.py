"""Sign-in with throttling: repeated failures for one name, or from one address, lock it out for a while,
on every sign-in page (the portal's and the admin's)."""

import hashlib
import ipaddress
import logging

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError

from apps.common.shortcut_cache import cache_count, cache_forget, cache_uncount, cached

from .services import client_address

logger = logging.getLogger(__name__)


def _throttled(whom: str) -> ValidationError:
    minutes = max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)
    return ValidationError(
        f"Too many failed sign-ins {whom}. Try again in {minutes} minutes.", code="throttled"
    )


def _address_key(request) -> str | None:
    """Return the failure counter's key for the address a sign-in comes from: an IPv6 client holds a whole
    /64, so that network is the unit; None without an address."""
    address = client_address(request) if request is not None else None
    if address is None:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:  # a peer that is no IP address (a unix socket's name): counted as what it is
        return f"login-failures-from:{address}"
    network = ipaddress.ip_network(f"{ip}/64", strict=False) if ip.version == 6 else ip
    return f"login-failures-from:{network}"


class LoginThrottleMixin:
    """Refuse sign-in for LOGIN_LOCKOUT_SECONDS after LOGIN_MAX_FAILURES failures for a username, or after
    LOGIN_MAX_FAILURES_PER_ADDRESS failures from one address (one password tried on many names)."""

    def clean(self):
        username = (self.cleaned_data.get("username") or "").strip().lower()
        # Hashed: a typed name may hold anything (newlines, escapes), which a cache key should not.
        key = f"login-failures:{hashlib.sha256(username.encode()).hexdigest()}"
        address_key = _address_key(getattr(self, "request", None))
        # Each password check takes its number before it runs: counted only after a refusal, a burst of
        # guesses sent at once all passed the lockout check before the first was counted.
        counted = bool(username and self.cleaned_data.get("password"))
        if counted:
            # The address first: a locked-out address does not count against the name it tries, so that
            # it cannot lock that person out everywhere.
            if address_key and _over(address_key, settings.LOGIN_MAX_FAILURES_PER_ADDRESS, username):
                raise _throttled("from your address")
            if _over(key, settings.LOGIN_MAX_FAILURES, username):
                raise _throttled("for this account")
        elif username and (cached(key) or 0) >= settings.LOGIN_MAX_FAILURES:
            raise _throttled("for this account")
        try:
            cleaned = super().clean()
        except ValidationError:
            # Only a wrong password counts: not the right one refused for another reason (a non-staff
            # person on the admin's sign-in page).
            if counted and self.user_cache is not None:
                _uncount(key, address_key)
            raise
        # Only a sign-in resets the name's count: a form refused before any password was checked (a blank
        # one) comes here too, and must not wipe the failures before it. The address's count only loses
        # this attempt: one's own account signed into must not wipe the failures of guesses at others.
        if self.user_cache is not None:
            cache_forget([key])
            if counted and address_key:
                cache_uncount(address_key)
        return cleaned


def _over(key: str, limit: int, username: str) -> bool:
    """Count an attempt; return whether it is over `limit` (never with the cache down: nothing counted).

    The first attempt refused is logged, once per lockout: guessing is otherwise invisible to operators.
    The name is someone's input: written with repr(), so no newline or terminal escape of it reaches a log.
    """
    attempts = cache_count(key, timeout=settings.LOGIN_LOCKOUT_SECONDS)
    if attempts == limit + 1:
        logger.warning(
            "sign-ins refused for %d s after %d failures counted as %r (this one for the name %r)",
            settings.LOGIN_LOCKOUT_SECONDS,
            limit,
            key,
            username,
        )
    return attempts is not None and attempts > limit


def _uncount(key: str, address_key: str | None) -> None:
    cache_uncount(key)
    if address_key:
        cache_uncount(address_key)


class ThrottledAuthenticationForm(LoginThrottleMixin, AuthenticationForm):
    """The portal's sign-in page."""


class ThrottledAdminAuthenticationForm(LoginThrottleMixin, AdminAuthenticationForm):
    """/admin/login/: the same count, so that the admin's page is not a way around the lockout."""


class PersonalTokenForm(forms.Form):
    label = forms.CharField(max_length=100, required=False)
