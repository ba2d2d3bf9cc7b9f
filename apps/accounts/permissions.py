"""Who may read what: role checks shared by pages and read APIs."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from rest_framework.permissions import BasePermission

from .roles import ADMIN


def has_role(user, *roles: str) -> bool:
    """Return whether a signed-in person holds one of the roles (admins hold every role)."""
    if not getattr(user, "is_authenticated", False) or not hasattr(user, "groups"):
        return False
    if user.is_superuser:
        return True
    names = getattr(user, "_role_names", None)
    if names is None:  # asked several times per page (views, nav): one query per request
        names = user._role_names = frozenset(user.groups.values_list("name", flat=True))
    return ADMIN in names or bool(names.intersection(roles))


def role_required(*roles: str) -> Callable:
    """Decorate a page view: anonymous users go to the login page; signed-in users without a role get 403."""

    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not has_role(request.user, *roles):
                raise PermissionDenied(f"this page needs the role {' or '.join(roles)}")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


class HasRole(BasePermission):
    """DRF permission: the view's `required_roles` (admins always pass)."""

    message = "Your role may not read this."

    def has_permission(self, request, view) -> bool:
        return has_role(request.user, *getattr(view, "required_roles", ()))
