"""Settings from the environment: a flag typo is refused, and production settings write nothing to disk."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.settings.base import env_bool

ROOT = Path(__file__).resolve().parent.parent.parent


def _import_settings(module: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL"}}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings as s; print(s.DEBUG)"],
        cwd=ROOT,
        env={**clean, "DJANGO_SETTINGS_MODULE": module, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("TRUE", True), (" yes ", True), ("On", True), ("0", False), ("False", False), ("no", False)],
)
def test_env_bool_reads_every_known_spelling(monkeypatch, raw, expected):
    monkeypatch.setenv("ROLLGATE_TEST_FLAG", raw)
    assert env_bool("ROLLGATE_TEST_FLAG", not expected) is expected


@pytest.mark.parametrize("typo", ["ture", "flase", "enabled", "2", "y"])
def test_env_bool_typo_is_refused_not_read_as_off(monkeypatch, typo):
    monkeypatch.setenv("ROLLGATE_TEST_FLAG", typo)
    with pytest.raises(ImproperlyConfigured, match="ROLLGATE_TEST_FLAG"):
        env_bool("ROLLGATE_TEST_FLAG", True)


def test_production_refuses_a_misspelt_flag():
    # Before, SECURE_SSL_REDIRECT=ture silently meant "off" in production.
    result = _import_settings(
        "config.settings.production", SECRET_KEY="x" * 60, SECURE_SSL_REDIRECT="ture", ROLLGATE_VAR_DIR="/nonexistent"
    )
    assert result.returncode != 0
    assert "SECURE_SSL_REDIRECT='ture' is not a boolean" in result.stderr


def test_production_settings_create_no_folders_at_import(tmp_path):
    var_dir = tmp_path / "var"
    result = _import_settings("config.settings.production", SECRET_KEY="x" * 60, ROLLGATE_VAR_DIR=str(var_dir))
    assert result.returncode == 0, result.stderr
    assert not var_dir.exists()


def test_local_settings_still_make_the_embedded_default_folders(tmp_path):
    var_dir = tmp_path / "var"
    result = _import_settings("config.settings.local", ROLLGATE_VAR_DIR=str(var_dir))
    assert result.returncode == 0, result.stderr
    for folder in ("out", "processed", "control"):
        assert (var_dir / "celery" / folder).is_dir(), folder
