"""Who did something, and through which door: what every audit entry records.

Services that do audit-worthy things take an `Actor` and write the entry themselves, so an action is
audited the same whether it came through a page, the API, the admin or a command.
"""

import getpass
import os
from dataclasses import dataclass
from typing import Any

from .models import AuditEntry
from .services import audit_write, client_address

DOORS = ("page", "api", "admin", "command")


@dataclass(frozen=True)
class Actor:
    name: str
    via: str  # one of DOORS
    user: Any = None  # the signed-in person, when there is one
    ip: str | None = None

    @classmethod
    def from_request(cls, request, *, via: str) -> "Actor":
        """The person making a request (a page, the API or the admin)."""
        user = request.user if getattr(request.user, "is_authenticated", False) else None
        return cls(
            name=str(user) if user else "anonymous",
            via=via,
            user=user if hasattr(user, "pk") else None,
            ip=client_address(request),
        )

    @classmethod
    def command(cls, name: str = "") -> "Actor":
        """Whoever runs a management command on the server."""
        return cls(name=f"command:{name or _os_user()}", via="command")


def _os_user() -> str:
    """Return the login name of this process, or its uid when it has none (a container's arbitrary uid
    has no passwd entry and often no USER in its environment)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # KeyError up to Python 3.12, OSError from 3.13
        return f"uid {os.getuid()}"


def audit(*, actor: Actor, action: str, target: str) -> None:
    """Write one audit entry for what `actor` did to `target` (an AuditEntry action)."""
    if action not in dict(AuditEntry.ACTIONS):
        raise ValueError(f"unknown audit action {action!r}")
    audit_write(
        actor_name=actor.name, action=action, target=target, via=actor.via, actor=actor.user, ip=actor.ip
    )
