"""Developer defaults: debug on, an insecure key that never leaves a laptop."""

import os

from .base import *  # noqa: F403
from .base import env_bool

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY") or "local-dev-only-not-secret"
