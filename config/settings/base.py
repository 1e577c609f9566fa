"""Everything Rollgate needs, read from the environment.

With no environment set, the app runs on an embedded default: a SQLite file under ``var/`` and Celery's
filesystem transport, so a newcomer needs no server. ``DATABASE_URL`` and ``CELERY_BROKER_URL`` switch to
PostgreSQL and Redis/RabbitMQ.
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("ROLLGATE_VAR_DIR", BASE_DIR / "var"))
# The embedded default keeps its SQLite file, broker folders and beat schedule here; a fresh clone has none.
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


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
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "simple_history",
    "core",
    "releases",
    "governance",
    "monitoring",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
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

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'rollgate.sqlite3'}"),
        conn_max_age=int(os.environ.get("DB_CONN_MAX_AGE", "0")),
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

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "config.api_permissions.RoleModelPermissions",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "django_filters.rest_framework.DjangoFilterBackend",
        "rest_framework.filters.OrderingFilter",
    ],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
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
    },
}

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
    # Every process that publishes (web, worker, beat) needs the folders before its first message.
    for _folder in ("out", "processed", "control"):
        (CELERY_FILESYSTEM_DIR / _folder).mkdir(parents=True, exist_ok=True)
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
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# The beat schedule lives here, in one place; each entry names the task that owns the work.
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    # governance: dismiss approvals past their policy's validity (the start_rollout guard checks expiry too).
    "governance-expire-approvals": {"task": "governance.expire_approvals", "schedule": timedelta(minutes=15)},
    # governance: escalate emergency retro-reviews not completed within 72 hours.
    "governance-escalate-overdue-retro-reviews": {
        "task": "governance.escalate_overdue_retro_reviews",
        "schedule": timedelta(minutes=30),
    },
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
