"""/healthz and /readyz: answered without credentials, over plain HTTP and for any Host (load balancers probe the
instance's own address), and saying nothing but which check failed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def production_like(settings):
    """What production adds in front of every view: HTTPS redirect and a strict host list."""
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["rollgate.example.com"]


def test_liveness_answers_without_the_database(client, production_like):
    # No django_db mark: any query would raise here.
    response = client.get("/healthz", HTTP_HOST="10.0.3.17:8000")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_readiness_checks_the_database_and_the_broker(client, production_like):
    response = client.get("/readyz", HTTP_HOST="10.0.3.17:8000")
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "broker": "ok"}}
    assert client.head("/readyz/").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_readiness_is_503_naming_the_broker_when_it_does_not_answer(client, settings, scheme):
    port = unused_port()
    settings.CELERY_BROKER_URL = f"{scheme}://guest:secret-password@127.0.0.1:{port}/0"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {}
    settings.READINESS_TIMEOUT_SECONDS = 1
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "broker": "unavailable"},
        "failed": ["broker"],
    }
    body = response.content.decode()
    assert str(port) not in body and "secret-password" not in body and scheme not in body


def test_readiness_is_503_naming_the_database_when_it_does_not_answer():
    # A process whose database is a port nobody listens on: the real driver fails to connect.
    code = (
        "import django, json; django.setup(); from django.test import Client; "
        "r = Client().get('/readyz'); print(r.status_code, json.dumps(r.json()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{unused_port()}/nowhere",
            "CELERY_BROKER_URL": "memory://",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    status, body = result.stdout.strip().split(" ", 1)
    assert status == "503"
    assert json.loads(body) == {
        "status": "unavailable",
        "checks": {"database": "unavailable", "broker": "ok"},
        "failed": ["database"],
    }


def test_probes_only_read(client):
    response = client.post("/healthz")
    assert response.status_code == 405
    assert response["Allow"] == "GET, HEAD"


def test_other_paths_still_need_a_known_host(client, production_like):
    assert client.get("/api/v1/releases/", HTTP_HOST="10.0.3.17:8000", secure=True).status_code == 400
