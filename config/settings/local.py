"""Developer defaults: debug on, an insecure key that never leaves a laptop."""

import os

from .base import *  # noqa: F403
from .base import CELERY_BROKER_URL, VAR_DIR, env_bool, make_embedded_folders

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY") or "local-dev-only-not-secret"

# The embedded default (SQLite file, filesystem broker, beat schedule) lives under var/; a fresh clone has none.
make_embedded_folders(var_dir=VAR_DIR, broker_url=CELERY_BROKER_URL)
