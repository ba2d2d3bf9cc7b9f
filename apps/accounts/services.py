"""Writes for accounts: users and their roles, the audit log, personal tokens (and their cached grants)."""

import functools
import ipaddress
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.auth.models import AbstractUser, Group
from django.contrib.auth.password_validation import validate_password
from django.contrib.sessions.models import Session
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string

from apps.common.secrets import PERSONAL_TOKEN_KIND, secret_hash, secret_store
from apps.common.shortcut_cache import cache_invalidate

from .models import AuditEntry, PersonalToken
from .roles import ADMIN, ROLES
from .selectors import token_cache_key, token_cache_seconds


class UserExists(Exception):
    """A user of that name exists and replacing it was not asked for."""


@transaction.atomic
def user_create(*, username: str, role: str, password: str, replace: bool = False) -> AbstractUser:
    """Create a user in exactly one role; with replace=True reset an existing user's password and role.

    Admins are also Django staff and superusers so that /admin/ works for them.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLES)}")
    user_model = get_user_model()
    # The admin's checks (not blank, length, allowed characters), before the name reaches the database.
    try:
        user_model._meta.get_field(user_model.USERNAME_FIELD).clean(username, None)
    except ValidationError as exc:
        raise ValidationError({"username": exc.messages}) from exc
    user = user_model.objects.filter(username=username).first()
    if user is not None and not replace:
        raise UserExists(f"user {username!r} already exists")
    if user is None:
        user = user_model(username=username)
    try:
        validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc
    user.set_password(password)
    user.is_staff = user.is_superuser = role == ADMIN
    try:
        with transaction.atomic():  # another create of the name may commit first: its unique key says so
            user.save()
    except IntegrityError as exc:
        raise UserExists(f"user {username!r} already exists") from exc
    group, _ = Group.objects.get_or_create(name=role)
    user.groups.set([group])
    return user


def audit_record(*, request, action: str, target: str, via: str) -> None:
    """Write one audit entry for the signed-in person making `request`."""
    _audit_entry(request=request, action=action, target=target, via=via).save()


@contextmanager
def audit_while(*, request, action: str, target: str, via: str, block_uses_database: bool) -> Iterator[None]:
    """Write one audit entry for `request`, committed by the time the block has run; a failed write fails
    the block's caller, so nothing read in the block is answered unaudited.

    When the block leaves the database alone (a search on Elasticsearch), the entry's INSERT is sent ahead
    on the request's connection without waiting: PostgreSQL writes, commits and flushes it while the block
    runs, and its answer is read afterwards. Otherwise, or on another database, the entry is written before
    the block. Deferring the write until after the response was ruled out: a read would be answered before
    its entry is durable, and lost with it if the write then failed.
    """
    entry = _audit_entry(request=request, action=action, target=target, via=via)
    if block_uses_database or not _can_send_ahead():
        entry.save()
        yield
        return
    with _sent_ahead(_insert_entry_sql(), _insert_params(entry)):
        yield


def audit_write(
    *, actor_name: str, action: str, target: str, via: str, actor=None, ip: str | None = None
) -> None:
    """Write one audit entry (for commands and tasks, which have no request)."""
    _new_audit_entry(actor_name=actor_name, action=action, target=target, via=via, actor=actor, ip=ip).save()


def _audit_entry(*, request, action: str, target: str, via: str) -> AuditEntry:
    user = request.user if getattr(request.user, "is_authenticated", False) else None
    return _new_audit_entry(
        actor=user if hasattr(user, "pk") else None,
        actor_name=str(user) if user else "anonymous",
        action=action,
        target=target,
        via=via,
        ip=client_address(request),
    )


def client_address(request) -> str | None:
    """Return the address a request came from: behind the proxy (BEHIND_PROXY), the one it forwards
    (deploy/'s nginx sets X-Forwarded-For to the client's address alone, whatever the client sent), else
    the peer's, which there would be the proxy's own for every request."""
    if settings.BEHIND_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").rpartition(",")[2].strip()
        try:
            return str(ipaddress.ip_address(forwarded))
        except ValueError:  # none, or not an address: the peer's, rather than nothing
            pass
    return request.META.get("REMOTE_ADDR") or None


def _new_audit_entry(
    *, actor_name: str, action: str, target: str, via: str, actor=None, ip: str | None = None
) -> AuditEntry:
    return AuditEntry(
        actor=actor,
        actor_name=actor_name[:150],
        action=action,
        # Whatever was asked for is recorded, even text the database cannot store as is (a NUL).
        target=target.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")[:300],
        via=via,
        ip=ip,
    )


def _can_send_ahead() -> bool:
    if connection.vendor != "postgresql":
        return False
    from django.db.backends.postgresql.psycopg_any import is_psycopg3  # psycopg2 has no `pq` layer

    return is_psycopg3


@functools.cache
def _insert_entry_sql() -> str:
    """The INSERT of an entry with server-side parameters ($1, …, in _entry_fields() order), without the
    RETURNING of the new id, which nobody reads."""
    quote = connection.ops.quote_name
    fields = _entry_fields()
    columns = ", ".join(quote(field.column) for field in fields)
    placeholders = ", ".join(f"${n}" for n in range(1, len(fields) + 1))
    return f"INSERT INTO {quote(AuditEntry._meta.db_table)} ({columns}) VALUES ({placeholders})"


@functools.cache
def _entry_fields() -> tuple:
    return tuple(field for field in AuditEntry._meta.concrete_fields if not field.primary_key)


def _insert_params(entry: AuditEntry) -> list[str | None]:
    """Return an unsaved entry's values as the text PostgreSQL reads for its columns (times in ISO-8601 with
    their offset): a fraction of the cost of Django's preparation and psycopg's client-side quoting."""
    values = (field.pre_save(entry, add=True) for field in _entry_fields())  # sets `at`, as save() would
    return [
        None if value is None else value.isoformat() if isinstance(value, datetime) else str(value)
        for value in values
    ]


@contextmanager
def _sent_ahead(sql: str, params: list[str | None]) -> Iterator[None]:
    """Send a statement before the block and take its outcome after it, on the request's connection;
    `params` fill its $1, $2, … as text (server-side binding).

    libpq's asynchronous command processing (PQsendQueryParams, then PQgetResult; psycopg's `pq` layer):
    PostgreSQL runs the statement, and outside a transaction commits it, while the block runs, and its
    answer is usually waiting in the socket when the block ends: no round trip is added. Unlike psycopg's
    pipeline mode, which commits only at its closing sync, this needs no BEGIN/COMMIT of its own. The block
    must not use the connection. The statement is logged for `connection.queries` like any other, but
    bypasses `connection.execute_wrappers`.
    """
    import select

    from psycopg import errors, pq

    connection.cursor().close()  # Django's checks first: health (may reconnect), broken transaction
    raw = connection.connection
    pgconn = raw.pgconn
    started = time.monotonic()
    with connection.wrap_database_errors:
        if pgconn.transaction_status == pq.TransactionStatus.ACTIVE:
            raise errors.ProgrammingError("another statement is still running on this connection")
        encoding = raw.info.encoding
        pgconn.send_query_params(
            sql.encode(encoding), [None if value is None else value.encode(encoding) for value in params]
        )
        while pgconn.flush():
            select.select([], [pgconn.socket], [])
    try:
        yield
    finally:
        # Every result is read, whatever the block did, so that the connection is ready for the next query.
        try:
            with connection.wrap_database_errors:
                pgconn.consume_input()
                while pgconn.is_busy():
                    select.select([pgconn.socket], [], [])
                    pgconn.consume_input()
                failure = None
                while (result := pgconn.get_result()) is not None:
                    if result.status == pq.ExecStatus.FATAL_ERROR and failure is None:
                        failure = errors.error_from_result(result, encoding=raw.info.encoding)
                if failure is not None:
                    raise failure
        finally:
            if connection.queries_logged:
                connection.queries_log.append(
                    {"sql": f"{sql} -- {params!r}", "time": f"{time.monotonic() - started:.3f}"}
                )


def personal_token_create(*, user, label: str = "") -> tuple[PersonalToken, str]:
    """Create a read-API token for a person; return it and the secret, shown once."""
    return secret_store(
        PERSONAL_TOKEN_KIND,
        lambda prefix, raw: PersonalToken.objects.create(
            user=user, prefix=prefix, key_hash=secret_hash(raw), label=label
        ),
        taken=lambda prefix: PersonalToken.objects.filter(prefix=prefix).exists(),
    )


def personal_token_revoke(*, user, prefix: str) -> bool:
    """Revoke one of the person's own tokens; return whether one was revoked.

    Its cached grant is dropped at once (and again after the commit, in case a concurrent request cached
    it in between): in this process, or everywhere with a shared cache, the token stops working now;
    elsewhere within PERSONAL_TOKEN_CACHE_SECONDS.
    """
    live = PersonalToken.objects.filter(user=user, prefix=prefix, revoked_at__isnull=True)
    hashes = list(live.values_list("key_hash", flat=True))
    revoked = bool(live.update(revoked_at=timezone.now()))
    personal_tokens_forget(key_hashes=hashes)
    return revoked


def personal_tokens_forget(*, key_hashes: Iterable[str] = (), user_ids: Iterable[int] = ()) -> None:
    """Drop cached token grants: these tokens', and every token of these users (their roles, their
    activity or their superuser flag changed). Dropped now and again when the transaction commits, and not
    cached again meanwhile by a request that read them before the commit (`cache_invalidate`)."""
    hashes = set(key_hashes)
    user_ids = set(user_ids)
    if user_ids:
        hashes.update(PersonalToken.objects.filter(user_id__in=user_ids).values_list("key_hash", flat=True))
    if not hashes:
        return
    cache_invalidate((token_cache_key(key_hash) for key_hash in sorted(hashes)), hold=token_cache_seconds())


def personal_token_touch(
    *, token_id: int, last_used_at: datetime | None, now: datetime, every_seconds: int = 60
) -> None:
    """Record that a token was used: at most one write per token a minute, whatever the processes.

    A process remembers its own last write; the UPDATE's condition makes another process's redundant
    attempt a no-op (no row written), so a minute sees one write per token.
    """
    every = timedelta(seconds=every_seconds)
    last = max(filter(None, (last_used_at, _tokens_touched.get(token_id))), default=None)
    if last is not None and now - last < every:
        return
    _tokens_touched[token_id] = now
    PersonalToken.objects.filter(pk=token_id).filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - every)
    ).update(last_used_at=now)


# token id -> when this process last wrote its last_used_at.
_tokens_touched: dict[int, datetime] = {}


def user_credentials_end(*, user_id: int, keep_session_key: str | None = None) -> None:
    """End a person's sessions (all but `keep_session_key`, the one in use when they did it themselves) and
    revoke their personal tokens: they were deactivated, or someone else set their password.

    Refusing an inactive person at each request only suspends them: taken back into use, a stolen session
    cookie or a leaked token made before would work again. A password set by an admin or an operator says
    the old one may be known: whatever was signed in with it must not outlive it.
    """
    tokens = PersonalToken.objects.filter(user_id=user_id, revoked_at__isnull=True)
    hashes = list(tokens.values_list("key_hash", flat=True))
    tokens.update(revoked_at=timezone.now())
    personal_tokens_forget(key_hashes=hashes)
    user_sessions_end(user_id=user_id, keep_session_key=keep_session_key)


def user_sessions_end(*, user_id: int, keep_session_key: str | None = None) -> None:
    """End every live session of a person but `keep_session_key`'s (None: every one)."""
    # Sessions name their person only inside their signed data: each live one is read. This runs on a
    # deactivation or a password change, which are rare, and the table holds signed-in people's sessions only.
    store_class = import_string(f"{settings.SESSION_ENGINE}.SessionStore")
    owner = str(user_id)
    live = Session.objects.filter(expire_date__gt=timezone.now()).only("session_key", "session_data")
    if keep_session_key:
        live = live.exclude(session_key=keep_session_key)
    for session in live.iterator(chunk_size=2000):
        if session.get_decoded().get(SESSION_KEY) == owner:
            store_class(session.session_key).delete()  # through the engine: a cached copy goes too
