"""Settings for SkyWatch Portal, read from the environment in this one place.

With no environment variables the portal runs embedded: SQLite, Celery tasks in-process and trace
search on the database. DATABASE_URL, CELERY_BROKER_URL and ELASTICSEARCH_URL switch on the real services.
"""

import os
import re
import socket
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from apps.common.rates import parse_rate

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool = False) -> bool:
    """Return an environment flag; accept 1/0, true/false, yes/no, on/off."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_str(name: str, default: str = "") -> str:
    """Return an environment variable without surrounding blanks; the default when it is unset or blank."""
    return os.environ.get(name, "").strip() or default


def env_list(name: str, default: str) -> list[str]:
    """Return a comma-separated environment variable as a list without blanks (the default's when blank)."""
    return [item.strip() for item in env_str(name, default).split(",") if item.strip()]


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    """Return an integer environment variable, the default when it is unset or blank; refuse one below
    `minimum`."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be {minimum} or more")
    return value


# The log levels that both logging and `celery --loglevel` know (the units pass LOG_LEVEL on to Celery).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def env_level(name: str, default: str = "INFO") -> str:
    """Return a log level name from the environment, in capitals; refuse one that is not in LOG_LEVELS."""
    level = env_str(name, default).upper()
    if level not in LOG_LEVELS:
        raise ImproperlyConfigured(f"{name}={level!r} is not one of {', '.join(LOG_LEVELS)}")
    return level


def without_credentials(url: str) -> str:
    """Return a URL with the user and password it may carry left out: it goes into error messages."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    _, at, host = rest.rpartition("@")
    return f"{scheme}{sep}{'…@' if at else ''}{host}"


def check_urls(name: str, value: str, schemes: tuple[str, ...], separators: str = ",;") -> None:
    """Refuse a URL (or each of a list, split at any of `separators`) without one of `schemes` or a host,
    or whose port is no number: a typo such as `localhost:9200` would fail every request using it."""
    items = re.split(f"[{re.escape(separators)}]", value) if separators else [value]
    for url in (item.strip() for item in items):
        parts = urlsplit(url)
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        host_ok = bool(parts.hostname) or parts.scheme == "unix"
        if parts.scheme not in schemes or not host_ok or not port_ok:
            raise ImproperlyConfigured(
                f"{name}: {without_credentials(url)!r} is not a URL like {schemes[0]}://host:port"
            )


def check_rate(name: str, value: str, example: str) -> None:
    """Refuse a rate its throttle cannot read, or one that allows no request: either would fail every request
    it applies to."""
    try:
        requests, _ = parse_rate(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not like {example} (N/s, N/min, N/hour)") from None
    if requests < 1:
        raise ImproperlyConfigured(f"{name}={value!r} must allow 1 request or more")


# Celery URLs with a host, whose form check_urls can check; other schemes are only named (below).
HOST_BROKER_SCHEMES = ("redis", "rediss", "amqp", "amqps", "pyamqp")


def check_celery_url(name: str, value: str, known: set[str]) -> None:
    """Refuse a Celery broker or result backend URL whose scheme Celery does not know (with or without a
    `+driver` part): kombu reads `localhost:6379` as an AMQP host called localhost, so every task would fail
    to publish while the portal looked fine."""
    for url in (item.strip() for item in value.split(";")):  # kombu's fail-over list
        scheme, sep, _ = url.partition("://")
        if not sep or scheme.lower().partition("+")[0] not in known:
            raise ImproperlyConfigured(
                f"{name}: {without_credentials(url)!r} is not a URL like redis://host:6379/0"
            )
        if scheme.lower() in HOST_BROKER_SCHEMES:
            check_urls(name, url, (scheme.lower(),), separators=";")


DEBUG = env_bool("DEBUG", False)

# Behind TLS in production (SECURE=1): secure cookies, HSTS, HTTPS redirects. Off for `make run` on http.
SECURE = env_bool("SECURE", False)

# A fixed development key keeps `make run` zero-configuration; production must set its own.
INSECURE_DEV_SECRET_KEY = "django-insecure-skywatch-dev-only-do-not-use-in-production"
SECRET_KEY = os.environ.get("SECRET_KEY") or INSECURE_DEV_SECRET_KEY
if SECURE and SECRET_KEY == INSECURE_DEV_SECRET_KEY:
    # Everyone can read the development key: sessions signed with it could be forged.
    raise ImproperlyConfigured("SECRET_KEY must be set with SECURE=1 (the development key is public)")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = SECURE
SECURE_SSL_REDIRECT = SECURE
SECURE_HSTS_SECONDS = 31_536_000 if SECURE else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = SECURE
# Behind the proxy of deploy/ (BEHIND_PROXY=1): https and the client's address are what it forwards.
BEHIND_PROXY = env_bool("BEHIND_PROXY", False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_PROXY else None
# The health probes are called over plain http by the load balancer and orchestration.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Every parser is capped: Django's form and body reading here, DRF's JSON parser in REST_FRAMEWORK.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

# Who this process is, stamped on every log line (the lessons' "service info as env vars").
SERVICE_NAME = env_str("SERVICE_NAME", "skywatch-portal")
STAGE = env_str("STAGE", "dev")

INSTALLED_APPS = [
    "django.contrib.admin",
    # Before django.contrib.auth: its `changepassword` command replaces Django's (which left the person's
    # sessions and tokens working).
    "apps.accounts",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our static files, not a CDN
    "apps.common",
    "apps.ingest",
    "apps.pipeline",
    "apps.metrics",
    "apps.dashboards",
    "apps.lifecycle",
    "apps.traces",
    "apps.wire",
    "apps.annotations",
    "apps.demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "apps.common.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # After WhiteNoise: static files keep their own caching; everything else is kept out of caches.
    "apps.common.middleware.PrivateAnswersMiddleware",
    # Outside CommonMiddleware and the URL resolver: their errors under /api/ are answered as JSON too.
    "apps.common.middleware.ApiErrorsAsJsonMiddleware",
    # A view the database could not serve (a refused connection, a statement timeout): 503, not a 500.
    "apps.common.middleware.DatabaseUnavailableMiddleware",
    "observatory.django.CorrelationIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "apps.common.middleware.AdminQueryNulMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Only our own files: no inline scripts, no CDN, nothing framed, no inline styles. Pages that draw Plotly
# charts add 'unsafe-inline' to style-src, and only that (apps/dashboards/csp.py says why).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

ROOT_URLCONF = "skywatch_portal.urls"
WSGI_APPLICATION = "skywatch_portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: SQLite by default, PostgreSQL (or any dj-database-url URL) from DATABASE_URL.
DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60, conn_health_checks=True)}
except ValueError as exc:  # an unknown scheme, a port that is no number
    raise ImproperlyConfigured(
        f"DATABASE_URL: {without_credentials(DATABASE_URL)!r} is not a database URL like "
        f"postgres://user:password@host:5432/name ({exc})"
    ) from None
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded mode writes from request threads and in-process tasks at once: take the write lock at
    # the start of a transaction (no "database is locked" on upgrade), wait for it, let readers go on (WAL).
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        timeout=20, transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL"
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend, with a health check that asks the server only when its socket has news.
    DATABASES["default"]["ENGINE"] = "apps.common.postgresql"
    # Fail fast when PostgreSQL is down, so the API can answer 503 instead of hanging.
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int(
        "DATABASE_CONNECT_TIMEOUT", 3, minimum=1
    )
    # No JIT compilation. PostgreSQL compiles a statement whose estimated cost passes jit_above_cost, and it
    # overestimates the joins between the pipeline's CTEs about 30-fold: compiling took ~100 ms of each
    # 190 ms chunk statement, every chunk (4.9 s against 1.9 s per 50,000 events). The funnel, retention
    # and series queries ran no faster with it (`scripts/bench.sh metrics analytics`, JIT on and off in
    # turn: funnel p50 1.3 s against 1.1 s without). A pooler in between must pass `options` through.
    options = f"{DATABASES['default']['OPTIONS'].get('options', '')} -c jit=off".strip()
    # Seconds after which PostgreSQL cancels a statement (0: never). The web unit sets it (deploy/): a page's
    # query otherwise ran on in PostgreSQL after nginx and gunicorn had given up on it; now it ends, and the
    # page is a 503 that says so. Workers, beat and commands keep no limit (rebuilds run for minutes).
    statement_timeout = env_int("DATABASE_STATEMENT_TIMEOUT", 0, minimum=0)
    if statement_timeout:
        options += f" -c statement_timeout={statement_timeout * 1000}"
    DATABASES["default"]["OPTIONS"]["options"] = options
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_MAX_FAILURES = env_int("LOGIN_MAX_FAILURES", 5, minimum=1)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 900, minimum=1)
# Failed sign-ins from one address (an IPv6 /64) within LOGIN_LOCKOUT_SECONDS before it is refused too: one
# password tried on many names never meets a name's own lockout. Room for an office behind one address.
LOGIN_MAX_FAILURES_PER_ADDRESS = 6 * LOGIN_MAX_FAILURES
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATICFILES_FINDERS = [
    "django.contrib.staticfiles.finders.FileSystemFinder",
    "django.contrib.staticfiles.finders.AppDirectoriesFinder",
    # plotly.min.js straight from the pinned plotly package: no copy in git, no CDN.
    "apps.dashboards.staticfiles.PlotlyJsFinder",
]
# Serve from the finders too, so `make run` and tests need no collectstatic step.
WHITENOISE_USE_FINDERS = True

# --- Celery: a real broker from CELERY_BROKER_URL, else tasks run in-process (eager).
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL")
if CELERY_BROKER_URL:
    from kombu.transport import TRANSPORT_ALIASES

    check_celery_url("CELERY_BROKER_URL", CELERY_BROKER_URL, set(TRANSPORT_ALIASES))
# kombu's Redis transport with a fix that keeps workers alive through a Redis restart (see broker.py).
CELERY_BROKER_TRANSPORT = (
    "skywatch_portal.broker:Transport" if CELERY_BROKER_URL.startswith("redis://") else None
)
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
if CELERY_TASK_ALWAYS_EAGER:
    # Celery still takes a producer from its pool for an in-process task: an in-memory one, named, so kombu
    # does not warn "No hostname was supplied" for an AMQP broker nobody uses.
    CELERY_BROKER_WRITE_URL = "memory://localhost/"
CELERY_TASK_EAGER_PROPAGATES = True
if env_str("CELERY_RESULT_BACKEND"):
    from celery.app.backends import BACKEND_ALIASES

    check_celery_url("CELERY_RESULT_BACKEND", env_str("CELERY_RESULT_BACKEND"), set(BACKEND_ALIASES))
CELERY_RESULT_BACKEND = env_str("CELERY_RESULT_BACKEND") or (CELERY_BROKER_URL or None)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Workers log through LOGGING below, as the web does: Celery otherwise replaces its handlers with a plain-text
# one, without the credential filter, the correlation ID or the JSON that keeps each record on one line.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5}
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 5}
# Celery's Django fixup closes the database connection before and after every task unless this is set: a
# new connection (and password exchange) per chunk cost ~30 ms. Connections are reused for this many tasks;
# each task still checks its connection first (skywatch_portal/celery.py), so a restarted server is fine.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 500, minimum=0)
# The sweeper's period: beat runs it; the embedded mode runs it after a stored batch once it is due.
PIPELINE_SWEEP_INTERVAL_SECONDS = env_int("PIPELINE_SWEEP_INTERVAL_SECONDS", 60, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "pipeline-sweep": {
        "task": "pipeline.sweep",
        "schedule": float(PIPELINE_SWEEP_INTERVAL_SECONDS),
    },
    "apply-retention": {"task": "lifecycle.apply_retention", "schedule": 24 * 3600.0},
    # Archives the days retention drops within two days (nothing to do while ARCHIVE_DIR is unset).
    "archive-events": {"task": "lifecycle.archive_due", "schedule": 24 * 3600.0},
    # Raw-event partitions a week ahead (an hour's run is idempotent).
    "ensure-partitions": {"task": "lifecycle.ensure_partitions", "schedule": 3600.0},
}

# --- Pipeline: chunks of events per task; the sweeper's grace period; attempts before dead-lettering.
# A drain takes what waits, up to this many: under load a bigger chunk writes fewer rollup rows per event
# (more of its events share a bucket) and pays a task's fixed costs less often (2,000 against 500: ~15 %
# more events/s for one worker, bench/README.md); when little waits, chunks stay small and prompt.
PIPELINE_CHUNK_SIZE = env_int("PIPELINE_CHUNK_SIZE", 2000, minimum=1)
PIPELINE_SWEEP_GRACE_SECONDS = env_int("PIPELINE_SWEEP_GRACE_SECONDS", 60, minimum=0)
PIPELINE_SWEEP_LIMIT = env_int("PIPELINE_SWEEP_LIMIT", 50_000, minimum=1)
PIPELINE_MAX_ATTEMPTS = env_int("PIPELINE_MAX_ATTEMPTS", 5, minimum=1)

# --- Data lifecycle: raw events and search indices are deleted after these ages; rollups stay. At least a
# day: 0 or less would delete everything stored, the events just received too.
RETENTION_RAW_DAYS = env_int("RETENTION_RAW_DAYS", 90, minimum=1)
RETENTION_INDEX_DAYS = env_int("RETENTION_INDEX_DAYS", 30, minimum=1)
# PostgreSQL: raw-event partitions made this many days ahead (a day without one goes to the default
# partition, and is moved out when its partition is made).
PARTITION_DAYS_AHEAD = env_int("PARTITION_DAYS_AHEAD", 7, minimum=0)
# Raw events as Parquet before retention drops them: a directory, or an fsspec URL (s3://bucket/prefix, with
# s3fs installed). Set, retention deletes only days the archive holds. Unset (the default): no archive.
ARCHIVE_DIR = env_str("ARCHIVE_DIR")

# --- Elasticsearch: trace search on Elasticsearch when ELASTICSEARCH_URL is set, else on the database.
# Several comma-separated URLs name nodes of one cluster: the client spreads requests over them and sends a
# request again to another node when one cannot be reached.
ELASTICSEARCH_URL = env_str("ELASTICSEARCH_URL")
if ELASTICSEARCH_URL:
    # Nodes are separated by commas only (apps/traces/search/elasticsearch.py: es_hosts).
    check_urls("ELASTICSEARCH_URL", ELASTICSEARCH_URL, ("http", "https"), separators=",")
ELASTICSEARCH_API_KEY = env_str("ELASTICSEARCH_API_KEY")
ELASTICSEARCH_CA_CERTS = env_str("ELASTICSEARCH_CA_CERTS")
ELASTICSEARCH_INDEX_PREFIX = env_str("ELASTICSEARCH_INDEX_PREFIX", "obs-events")
ELASTICSEARCH_TIMEOUT = env_int("ELASTICSEARCH_TIMEOUT", 10, minimum=1)
# The daily indices' primary shards and replicas each. Replicas default to 0, right for one node (a replica
# is never placed beside its primary, so a single node with replicas would stay yellow); a cluster sets 1+.
# Shards apply to daily indices created from then on; replicas to the existing ones too.
ELASTICSEARCH_SHARDS = env_int("ELASTICSEARCH_SHARDS", 1)
ELASTICSEARCH_REPLICAS = env_int("ELASTICSEARCH_REPLICAS", 0, minimum=0)
if not 1 <= ELASTICSEARCH_SHARDS <= 1024:
    raise ImproperlyConfigured(f"ELASTICSEARCH_SHARDS={ELASTICSEARCH_SHARDS} must be between 1 and 1024")
TRACE_BACKEND = (
    "apps.traces.search.elasticsearch.ElasticsearchTraceBackend"
    if ELASTICSEARCH_URL
    else "apps.traces.search.database.DatabaseTraceBackend"
)

# --- Cache: shared Redis when CACHE_URL is set (throttle counters must be shared by all processes).
CACHE_URL = env_str("CACHE_URL")
if CACHE_URL:
    check_urls("CACHE_URL", CACHE_URL, ("redis", "rediss", "unix"))
# The cache is a shortcut (apps/common/shortcut_cache.py): a Redis that stops answering must cost a request
# seconds, not hold it for as long as the connection lives (redis-py waits for ever by default).
CACHE_REDIS_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 2}
CACHES = {
    "default": (
        {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "OPTIONS": CACHE_REDIS_OPTIONS,
        }
        if CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

# What a personal token grants (owner, roles) is cached this long; revoking a token or changing its owner's
# roles takes effect at once in the process that did it, and everywhere at once with a shared CACHE_URL.
PERSONAL_TOKEN_CACHE_SECONDS = env_int("PERSONAL_TOKEN_CACHE_SECONDS", 5, minimum=0)

# --- Ingestion limits (DESIGN.md): per event 32 KB (in conform.py), per batch 1000 events and 1 MB.
INGEST_MAX_BATCH_EVENTS = 1000
INGEST_MAX_BODY_BYTES = 1024 * 1024
# A gzip body may expand to this much JSON; more is refused as a decompression bomb.
INGEST_MAX_DECOMPRESSED_BYTES = env_int("INGEST_MAX_DECOMPRESSED_BYTES", 4 * 1024 * 1024, minimum=1)
# Foreign SDKs' batches are bigger at their defaults and are not split on a 413 (the whole batch is given
# up): posthog-python closes a batch once it has passed 5 MB, so one may hold 5 MB plus its last event (up to
# 900 KB) plus the envelope; an OTLP exporter sends 512 spans, easily over 1 MB, not compressed unless
# configured. The wire endpoints take up to 8 MB as sent, 16 MB inflated (PostHog's own limit is 20 MB).
# Still at most 1000 events of at most 32 KB each.
WIRE_MAX_BODY_BYTES = 8 * 1024 * 1024
WIRE_MAX_DECOMPRESSED_BYTES = env_int("WIRE_MAX_DECOMPRESSED_BYTES", 16 * 1024 * 1024, minimum=1)
INGEST_RATE_LIMIT = env_str("INGEST_RATE_LIMIT", "3000/min")
check_rate("INGEST_RATE_LIMIT", INGEST_RATE_LIMIT, "3000/min")
# A usable service key is cached this long; a change through the ORM forgets it at once (in every process
# with a shared CACHE_URL, else in the one that made it: the others see it within this time).
INGEST_KEY_CACHE_SECONDS = env_int("INGEST_KEY_CACHE_SECONDS", 5, minimum=0)
INGEST_NODE = env_str("INGEST_NODE") or socket.gethostname()

# --- REST framework and the OpenAPI schema.
# Requests per person and window on the read APIs (session or personal token alike): room for a dashboard's
# charts and a notebook's loop, not for a script that would take the database's or the cluster's every
# connection. Ingestion keeps its per-key rate (INGEST_RATE_LIMIT).
API_READ_RATE_LIMIT = env_str("API_READ_RATE_LIMIT", "120/min")
check_rate("API_READ_RATE_LIMIT", API_READ_RATE_LIMIT, "120/min")
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Views with throttles of their own (ingestion's per-key rate) replace this one.
    "DEFAULT_THROTTLE_CLASSES": ["apps.accounts.throttling.PersonRateThrottle"],
    "EXCEPTION_HANDLER": "apps.common.exceptions.api_exception_handler",
    "DEFAULT_PARSER_CLASSES": ["apps.common.parsers.BoundedJSONParser"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "SkyWatch Portal API",
    "DESCRIPTION": "Ingestion of metric events and log lines, trace lookups and usage series.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Login is required everywhere but the probes and ingestion: the schema too.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SERVE_AUTHENTICATION": [
        "apps.accounts.auth.PersonalTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Trace events and request summaries share one level enum.
    "ENUM_NAME_OVERRIDES": {"LevelEnum": "apps.ingest.conform.LEVELS"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.ingest.schema.complete_batch_request",
        "apps.common.openapi.document_shared_answers",
    ],
}

# --- Logging: JSON lines on stdout, each with service, stage and correlation_id.
LOG_LEVEL = env_level("LOG_LEVEL")
# With both set, the portal sends its own log lines to a portal (itself, under `make run`) as a service.
OBSERVATORY_URL = env_str("OBSERVATORY_URL")
if OBSERVATORY_URL:
    check_urls("OBSERVATORY_URL", OBSERVATORY_URL, ("http", "https"), separators="")
OBSERVATORY_API_KEY = env_str("OBSERVATORY_API_KEY")
PORTAL_SHIP_LOG_LEVEL = env_level("PORTAL_SHIP_LOG_LEVEL")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        # No credential in a log line: they reach stdout and, shipped, the portal's own events.
        "redact": {"()": "apps.common.redact.RedactCredentialsFilter"},
        # The pipeline's own chatter about processing shipped lines is not shipped (it would loop).
        "pipeline_chatter": {
            "()": "apps.common.logfilters.WarningsOnlyFrom",
            "loggers": ["celery", "kombu", "apps.pipeline", "apps.metrics"],
        },
        "one_warning_line": {"()": "apps.common.logfilters.AsOneWarningLine"},
        "correlation": {
            "()": "observatory.logging.CorrelationFilter",
            "service": SERVICE_NAME,
            "stage": STAGE,
        },
    },
    "formatters": {"json": {"()": "observatory.logging.JsonFormatter"}},
    "handlers": {
        "stdout": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "filters": ["redact", "correlation"],
            "formatter": "json",
        },
        # The portal's own log lines, shipped to itself through the observatory client (service from its key).
        "portal": {
            "()": "observatory.logging.TrackerHandler",
            "level": PORTAL_SHIP_LOG_LEVEL,
            "filters": ["pipeline_chatter", "redact", "correlation"],
        },
    },
    "root": {
        "handlers": ["stdout", *(["portal"] if OBSERVATORY_URL and OBSERVATORY_API_KEY else [])],
        "level": LOG_LEVEL,
    },
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "elastic_transport": {"level": "WARNING"},
        # runserver's access log stays on stdout: shipping it would log the shipping request, and so on.
        "django.server": {"handlers": ["stdout"], "propagate": False},
        # A Host the portal does not serve: anyone can send one; one line, not an error with a traceback.
        "django.security.DisallowedHost": {"filters": ["one_warning_line"]},
    },
}
