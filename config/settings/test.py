"""Test settings: PostgreSQL by default (the suite relies on row locks and partial unique constraints)."""

import os

import dj_database_url

from .base import *  # noqa: F403
from .base import instrumented

SECRET_KEY = "test-only-not-secret"  # noqa: S105
DEBUG = False
DATABASES = {
    "default": instrumented(
        dj_database_url.parse(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rollgate"))
    )
}
if DATABASES["default"]["ENGINE"].endswith("postgresql"):
    # The same backend, with a COPY-based serialized rollback for transactional tests (tests/postgresql_backend).
    DATABASES["default"]["ENGINE"] = "tests.postgresql_backend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "memory://")
if CELERY_BROKER_URL == "memory://":
    # Not base's filesystem folders; a real broker (the worker tests) keeps base's options, visibility timeout included.
    CELERY_BROKER_TRANSPORT_OPTIONS = {}
CELERY_TASK_ALWAYS_EAGER = False
# Token requests across the whole suite share one client address and one in-process cache; the throttle tests
# set the production rate themselves and clear the cache.
API_TOKEN_THROTTLE_RATE = "10000/minute"  # noqa: S105 (a rate, not a password)
