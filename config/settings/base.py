"""Everything Rollgate needs, read from the environment.

With no environment set, the app runs on an embedded default: a SQLite file under ``var/`` and Celery's
filesystem transport, so a newcomer needs no server. ``DATABASE_URL`` and ``CELERY_BROKER_URL`` switch to
PostgreSQL and Redis/RabbitMQ.
"""

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# The embedded default keeps its SQLite file, broker folders and beat schedule here; a fresh clone has none.
# Importing settings creates nothing: local settings make the folders (``make_embedded_folders``), so production
# never writes into its code directory.
VAR_DIR = Path(os.environ.get("ROLLGATE_VAR_DIR", BASE_DIR / "var"))

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def env_bool(name: str, default: bool = False) -> bool:
    """A flag from the environment. Anything but a known spelling is refused, so a typo never turns it off."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    normalised = value.strip().lower()
    if normalised in _TRUE:
        return True
    if normalised in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={value!r} is not a boolean; use one of {', '.join(sorted(_TRUE | _FALSE))} (any case)."
    )


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer.") from None


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    try:
        return float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number.") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# Overridden by local/test settings; production refuses to start without it.
SECRET_KEY = os.environ.get("SECRET_KEY", "")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "axes",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "django_prometheus",
    "core",
    "releases",
    "governance",
    "monitoring",
    "opportunities",
    "evidence",
    "demo",  # the top floor: demo data across every app
]

MIDDLEWARE = [
    # First: load balancers probe /healthz and /readyz over plain HTTP with no Host we know and no credentials.
    "core.health.HealthProbeMiddleware",
    # Counts every request below it (django-prometheus wants its two halves first and last; axes must be last).
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # Early, so every log line written while a request is handled carries its id.
    "core.request_id.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Refuses an oversized /api/ body before anything reads it, and answers /api/ failures as JSON.
    "core.middleware.ApiErrorMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # After authentication: a retried POST's key is scoped by the user the API authenticates.
    "core.idempotency.IdempotencyKeyMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
    # Last, as django-axes requires: turns a locked-out login into core.auth.lockout_response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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


def instrumented(database: Mapping[str, Any]) -> dict[str, Any]:
    """The same database through django-prometheus's backend wrapper, which counts connections, queries, errors
    and query durations (``django_db_*`` on /metrics). The vendor stays the same."""
    wrapped = {
        "django.db.backends.postgresql": "django_prometheus.db.backends.postgresql",
        "django.db.backends.sqlite3": "django_prometheus.db.backends.sqlite3",
    }
    return {**database, "ENGINE": wrapped.get(database["ENGINE"], database["ENGINE"])}


DATABASES = {
    "default": instrumented(
        dj_database_url.parse(
            os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'rollgate.sqlite3'}"),
            conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "0")),
        )
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded default has the web app and a worker writing one file: take the write lock when a transaction
    # starts and wait for it, rather than failing with "database is locked" half-way through.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

LOGIN_URL = "admin:login"

# --- Authentication -----------------------------------------------------------------------------------------
# django-axes first: it refuses a locked-out client before any password is checked (admin login and the token
# endpoint both authenticate with the request).
# RolePermissionBackend is Django's ModelBackend reading permissions in one query (core.auth).
AUTHENTICATION_BACKENDS = ["core.auth.RequestAxesBackend", "core.auth.RolePermissionBackend"]
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 10)
# Minutes a locked-out client waits; 0 means until an administrator runs `manage.py axes_reset`.
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 30)) or None
# Lock the address that keeps failing, not the username: a username lockout would let anyone lock out an admin.
AXES_LOCKOUT_PARAMETERS = ["ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "core.auth.lockout_response"
# Lockouts and failures still go to the "axes" logger; the banner on every manage.py command is noise.
AXES_VERBOSE = False
# Behind a proxy, set AXES_IPWARE_PROXY_COUNT so the client address (not the proxy's) is counted.
AXES_IPWARE_PROXY_COUNT = env_int("AXES_IPWARE_PROXY_COUNT", 0) or None
# API tokens expire after this many hours; rotate with POST /api/v1/auth/token/rotate/.
API_TOKEN_TTL_HOURS = env_int("API_TOKEN_TTL_HOURS", 12)
# Password attempts on POST /api/v1/auth/token/ per client address (DRF rate syntax: N/second|minute|hour|day).
API_TOKEN_THROTTLE_RATE = os.environ.get("API_TOKEN_THROTTLE_RATE", "10/minute")

# The throttle counters live in the cache. The in-process default suits one web process; with several replicas
# set CACHE_REDIS_URL so they share the counts.
if os.environ.get("CACHE_REDIS_URL"):
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ["CACHE_REDIS_URL"]}
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "rollgate"}}

# --- API input limits ---------------------------------------------------------------------------------------
# A metric-sample row is about 280 bytes of JSON, so the documented batch of 10,000 rows is about 2.8 MB; 8 MB
# leaves room for long source names. A larger /api/ body is answered with a JSON 413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("API_MAX_BODY_BYTES", 8 * 1024 * 1024)
# Rollgate's deepest payload (a release with stages and a resolution flow) nests under ten levels.
API_JSON_MAX_DEPTH = env_int("API_JSON_MAX_DEPTH", 32)
# ?limit= beyond this returns this many rows; page through with ?offset=.
API_MAX_PAGE_SIZE = env_int("API_MAX_PAGE_SIZE", 500)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.auth.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "config.api_permissions.RoleModelPermissions",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "core.api.filters.RequestedFiltersBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "core.api.parsers.BoundedJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_RENDERER_CLASSES": [
        "core.api.renderers.OrjsonRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.CappedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.exception_handler.domain_exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Rollgate API",
    "DESCRIPTION": "Release and governance system for customer-service automation solutions.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from our own static files (drf-spectacular-sidecar): the docs work offline and load no CDN code.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models have a "status" or "resolution"; name each enum after what it describes.
    "ENUM_NAME_OVERRIDES": {
        "ReleaseStatusEnum": "releases.choices.ReleaseStatus",
        "TemplateStatusEnum": "governance.models.TemplateStatus",
        "ChecklistStatusEnum": "governance.models.ChecklistStatus",
        "IncidentStatusEnum": "monitoring.choices.IncidentStatus",
        "DeliveryStatusEnum": "monitoring.choices.DeliveryStatus",
        "IncidentResolutionEnum": "monitoring.choices.Resolution",
        "ManualResolutionEnum": "monitoring.choices.MANUAL_RESOLUTIONS",
        "SeverityEnum": "monitoring.choices.Severity",  # incidents' severity and endpoints' min_severity
        "MetricKindEnum": "monitoring.choices.MetricKind",
        "IncidentEventKindEnum": "monitoring.choices.IncidentEventKind",
        "IncidentKindEnum": "monitoring.choices.IncidentKind",
    },
}

# --- Operations: probes and metrics --------------------------------------------------------------------------
# /readyz gives the database and the broker this long each before it answers 503.
READINESS_TIMEOUT_SECONDS = env_float("READINESS_TIMEOUT_SECONDS", 2.0)
# /metrics answers a scraper that sends "Authorization: Bearer <METRICS_TOKEN>" (or a signed-in superuser); with no
# token set only a superuser's session can read it. See docs/deploy.md.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")

# --- Audit -------------------------------------------------------------------------------------------------
# Signs the audit chain's checkpoints. Production should set it, and keep it away from the database's
# administrators: whoever holds it can forge a checkpoint. Unset, a key derived from SECRET_KEY is used.
AUDIT_CHECKPOINT_KEY = os.environ.get("AUDIT_CHECKPOINT_KEY", "")

# --- Celery -------------------------------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
CELERY_FILESYSTEM_DIR = VAR_DIR / "celery"
if CELERY_BROKER_URL == "filesystem://":
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_FILESYSTEM_DIR / "out"),
        "data_folder_out": str(CELERY_FILESYSTEM_DIR / "out"),
        "processed_folder": str(CELERY_FILESYSTEM_DIR / "processed"),
        # Broadcast (pidbox) exchanges; kombu otherwise writes them to ./control in the working directory.
        "control_folder": str(CELERY_FILESYSTEM_DIR / "control"),
        "store_processed": False,
    }
else:
    # Redis: a task not acknowledged within this many seconds (its worker died, or it is still running) is
    # redelivered to another worker. Keep it above the longest task time limit; the worker-kill test lowers it.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": int(os.environ.get("CELERY_BROKER_VISIBILITY_TIMEOUT", "3600")),
    }
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# A worker creates this file's folder when it starts (config/celery.py); a standalone `celery beat` in production
# takes an existing writable path from the environment.
# Exactly one beat schedules, however many are started: each holds or waits for a PostgreSQL advisory lock
# (core/beat.py). A standby beat tries again this often, so it takes over this long after the holder dies.
CELERY_BEAT_SCHEDULER = "core.beat:LockedPersistentScheduler"
BEAT_LOCK_POLL_SECONDS = env_float("BEAT_LOCK_POLL_SECONDS", 5.0)
CELERY_BEAT_SCHEDULE_FILENAME = os.environ.get("CELERY_BEAT_SCHEDULE_FILENAME", str(VAR_DIR / "celerybeat-schedule"))


def make_embedded_folders(*, var_dir: Path, broker_url: str) -> None:
    """Create what the embedded default writes to: the SQLite file's folder and the filesystem broker's folders.

    Every process that publishes (web, worker, beat) needs the broker folders before its first message, so the
    local settings call this at import; production settings never do.
    """
    var_dir.mkdir(parents=True, exist_ok=True)
    if broker_url == "filesystem://":
        for folder in ("out", "processed", "control"):
            (var_dir / "celery" / folder).mkdir(parents=True, exist_ok=True)


# The beat schedule lives here, in one place; each entry names the task that owns the work.
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    # governance: dismiss approvals past their policy's validity (the start_rollout guard checks expiry too).
    "governance-expire-approvals": {"task": "governance.expire_approvals", "schedule": timedelta(minutes=15)},
    # governance: escalate emergency retro-reviews not completed within 72 hours.
    "governance-escalate-overdue-retro-reviews": {
        "task": "governance.escalate_overdue_retro_reviews",
        "schedule": timedelta(minutes=30),
    },
    # core: sign the audit chain's head into a checkpoint row and the log, so deleting the newest events shows.
    "core-audit-checkpoint": {"task": "core.audit_checkpoint", "schedule": timedelta(minutes=5)},
    # monitoring: evaluate every live release's guardrails (fans out batches; idempotent per window).
    "monitoring-evaluate-guardrails": {
        "task": "monitoring.evaluate_guardrails_cycle",
        "schedule": timedelta(minutes=1),
    },
    # monitoring: promote ready auto-promote rollouts, complete verification windows that ended green.
    "monitoring-rollout-automation": {"task": "monitoring.rollout_automate", "schedule": timedelta(minutes=1)},
    # monitoring: escalate incidents unacknowledged past their severity's deadline.
    "monitoring-escalate-incidents": {"task": "monitoring.escalate_incidents", "schedule": timedelta(minutes=1)},
    # monitoring: resend pending notifications (broker or receiver down, worker killed mid-send).
    "monitoring-sweep-notifications": {"task": "monitoring.sweep_notifications", "schedule": timedelta(minutes=1)},
    # opportunities: measure delivered opportunities once a linked release is verified and a week of data is in.
    "opportunities-measure-due": {"task": "opportunities.measure_due", "schedule": timedelta(hours=1)},
}

# --- Notifications ------------------------------------------------------------------------------------------
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "rollgate@localhost")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
}

SIMPLE_HISTORY_REVERT_DISABLED = True
