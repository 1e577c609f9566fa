"""Smoke test of the embedded default: a fresh SQLite file, migrate, demo data, real requests, audit chain."""

import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
var_dir = tempfile.mkdtemp(prefix="rollgate-smoke-")
os.environ["ROLLGATE_VAR_DIR"] = var_dir
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
for name in ("DATABASE_URL", "CELERY_BROKER_URL"):
    os.environ.pop(name, None)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402

from releases.management.commands.seed_demo import DEMO_PASSWORD  # noqa: E402

assert settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"), settings.DATABASES["default"]["ENGINE"]
assert settings.CELERY_BROKER_URL == "filesystem://"
call_command("migrate", verbosity=0, interactive=False)
call_command("seed_demo")
call_command("audit_verify")

client = Client()
assert client.login(username="pm", password=DEMO_PASSWORD)
checks = ["/admin/", "/admin/releases/release/", "/api/v1/releases/", "/api/schema/"]
for url in checks:
    response = client.get(url, HTTP_HOST="127.0.0.1")
    assert response.status_code == 200, (url, response.status_code)
print(f"smoke: embedded default OK ({settings.DATABASES['default']['NAME']}); {len(checks)} pages answered 200")
