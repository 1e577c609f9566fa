"""Settings read from the environment: production refuses to start without a secret, local runs with nothing set."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import Group

from core.roles import ALL_ROLES, ROLE_PERMISSIONS

ROOT = Path(__file__).resolve().parent.parent


def _settings_of(module: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL"}}
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.DATABASES['default']['ENGINE'], s.CELERY_BROKER_URL, s.DEBUG)"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": module, "ROLLGATE_VAR_DIR": "/tmp/rollgate-settings-test", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_production_refuses_to_start_without_secret_key():
    result = _settings_of("config.settings.production")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_reads_the_environment():
    result = _settings_of(
        "config.settings.production",
        SECRET_KEY="x" * 60,
        DATABASE_URL="postgres://u@db.example:5432/rollgate",
        CELERY_BROKER_URL="redis://cache.example:6379/0",
    )
    assert result.returncode == 0, result.stderr
    # The PostgreSQL backend behind django-prometheus's wrapper, which counts its queries for /metrics.
    engine, broker, debug = result.stdout.split()
    assert (engine, broker, debug) == (
        "django_prometheus.db.backends.postgresql",
        "redis://cache.example:6379/0",
        "False",
    )


def test_local_runs_on_the_embedded_default_with_nothing_set():
    result = _settings_of("config.settings.local")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["django_prometheus.db.backends.sqlite3", "filesystem://", "True"]


@pytest.mark.django_db
def test_migrations_create_every_role_with_its_permissions():
    for role in ALL_ROLES:
        group = Group.objects.get(name=role)
        granted = {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}
        assert set(ROLE_PERMISSIONS[role]) <= granted, role
