"""Sign-in and password change with throttling: repeated wrong passwords for one name, or from one address,
lock it out for a while, on every page that checks a password (the portal's and the admin's sign-in, the
portal's password change), all counted together: each is a guess at the same secret."""

import hashlib
import ipaddress
import logging

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm, PasswordChangeForm
from django.core.exceptions import ValidationError

from apps.common.shortcut_cache import cache_count, cache_forget, cache_uncount, cached

from .services import client_address

logger = logging.getLogger(__name__)


def _throttled(whom: str, *, failures: str = "failed sign-ins") -> ValidationError:
    minutes = max(1, settings.LOGIN_LOCKOUT_SECONDS // 60)
    return ValidationError(f"Too many {failures} {whom}. Try again in {minutes} minutes.", code="throttled")


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


class PasswordGuess:
    """One password check's place in the failure counts: LOGIN_MAX_FAILURES per username and
    LOGIN_MAX_FAILURES_PER_ADDRESS per address (one password tried on many names), for
    LOGIN_LOCKOUT_SECONDS."""

    def __init__(self, *, username: str, request, checking: str, failures: str) -> None:
        self.username = username.strip().lower()
        # Hashed: a typed name may hold anything (newlines, escapes), which a cache key should not.
        self.key = f"login-failures:{hashlib.sha256(self.username.encode()).hexdigest()}"
        self.address_key = _address_key(request)
        self.checking = checking  # what the log line says was refused: "sign-ins"
        self.failures = failures  # what the person is told there were too many of
        self.counted = False

    def count(self) -> None:
        """Count this check before it runs; raise the lockout's ValidationError when over a limit.

        Counted before, not after a refusal: a burst of guesses sent at once all passed the lockout check
        before the first was counted.
        """
        self.counted = True
        # The address first: a locked-out address does not count against the name it tries, so that it
        # cannot lock that person out everywhere.
        if self.address_key and self._over(self.address_key, settings.LOGIN_MAX_FAILURES_PER_ADDRESS):
            raise _throttled("from your address", failures=self.failures)
        if self._over(self.key, settings.LOGIN_MAX_FAILURES):
            raise _throttled("for this account", failures=self.failures)

    def refuse_if_name_locked(self) -> None:
        """Without counting (no password to check): raise the lockout's error while the name is locked."""
        if self.username and (cached(self.key) or 0) >= settings.LOGIN_MAX_FAILURES:
            raise _throttled("for this account", failures=self.failures)

    def not_a_guess(self) -> None:
        """Take this check back out of both counts: the right password, refused for another reason."""
        cache_uncount(self.key)
        if self.address_key:
            cache_uncount(self.address_key)

    def right(self) -> None:
        """The password was right: the name's count starts again; the address's only loses this check, so
        that one's own password must not wipe the failures of guesses at others'."""
        cache_forget([self.key])
        if self.counted and self.address_key:
            cache_uncount(self.address_key)

    def _over(self, key: str, limit: int) -> bool:
        """Count an attempt; return whether it is over `limit` (never with the cache down: nothing counted).

        The first attempt refused is logged, once per lockout: guessing is otherwise invisible to operators.
        The name is someone's input: written with repr(), so no newline or terminal escape of it reaches a
        log.
        """
        attempts = cache_count(key, timeout=settings.LOGIN_LOCKOUT_SECONDS)
        if attempts == limit + 1:
            logger.warning(
                "%s refused for %d s after %d failures counted as %r (this one for the name %r)",
                self.checking,
                settings.LOGIN_LOCKOUT_SECONDS,
                limit,
                key,
                self.username,
            )
        return attempts is not None and attempts > limit


class LoginThrottleMixin:
    """Refuse sign-in for LOGIN_LOCKOUT_SECONDS after too many wrong passwords for its name or from its
    address (PasswordGuess)."""

    def clean(self):
        guess = PasswordGuess(
            username=self.cleaned_data.get("username") or "",
            request=getattr(self, "request", None),
            checking="sign-ins",
            failures="failed sign-ins",
        )
        if guess.username and self.cleaned_data.get("password"):
            guess.count()
        else:
            guess.refuse_if_name_locked()
        try:
            cleaned = super().clean()
        except ValidationError:
            # Only a wrong password counts: not the right one refused for another reason (a non-staff
            # person on the admin's sign-in page).
            if guess.counted and self.user_cache is not None:
                guess.not_a_guess()
            raise
        # Only a sign-in resets the name's count: a form refused before any password was checked (a blank
        # one) comes here too, and must not wipe the failures before it.
        if self.user_cache is not None:
            guess.right()
        return cleaned


class ThrottledAuthenticationForm(LoginThrottleMixin, AuthenticationForm):
    """The portal's sign-in page."""


class ThrottledAdminAuthenticationForm(LoginThrottleMixin, AdminAuthenticationForm):
    """/admin/login/: the same count, so that the admin's page is not a way around the lockout."""


class ThrottledPasswordChangeForm(PasswordChangeForm):
    """The portal's password change: the current password is a guess like a sign-in's, counted with them (a
    stolen session must not become a way to try passwords without limit); the new one meets
    AUTH_PASSWORD_VALIDATORS (Django's SetPasswordForm)."""

    def __init__(self, user, *args, request=None, **kwargs) -> None:
        self.request = request
        super().__init__(user, *args, **kwargs)

    def clean_old_password(self) -> str:
        guess = PasswordGuess(
            username=self.user.get_username(),
            request=self.request,
            checking="password changes",
            failures="wrong passwords",
        )
        guess.count()  # a blank one never gets here: the field is required
        old_password = super().clean_old_password()
        guess.right()
        return old_password


class PersonalTokenForm(forms.Form):
    label = forms.CharField(max_length=100, required=False)
