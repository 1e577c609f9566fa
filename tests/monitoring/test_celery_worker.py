"""A real Celery worker on a real Redis broker: breaching samples → incident opened → release paused → webhook.

Run alone with ``pytest -m celery_worker``. The broker defaults to Redis database 5 so it does not collide with
other suites; set ``MONITORING_TEST_BROKER_URL`` to use another.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from monitoring.choices import GuardrailAction, IncidentStatus
from monitoring.models import Guardrail, Incident, MetricDefinition, NotificationEndpoint
from releases.choices import ReleaseStatus
from releases.models import Release
from tests.factories import SolutionFactory, UserFactory, make_release

from .conftest import make_guardrail, put_live

BROKER_URL = os.environ.get("MONITORING_TEST_BROKER_URL", "redis://127.0.0.1:6379/5")
ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def _broker_available() -> bool:
    import redis

    try:
        client = redis.Redis.from_url(BROKER_URL, socket_connect_timeout=1)
        client.flushdb()  # only this suite's database: stale messages from an earlier run would confuse it
        return True
    except redis.exceptions.ConnectionError:
        return False


def _env() -> dict[str, str]:
    settings = connection.settings_dict
    database_url = (
        f"postgres://{settings['USER']}@{settings['HOST'] or '127.0.0.1'}:{settings['PORT'] or 5432}/{settings['NAME']}"
    )
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": BROKER_URL,
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def worker(tmp_path):
    if not _broker_available():
        pytest.skip(f"no Redis at {BROKER_URL}")
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "--loglevel=INFO",
        ],
        cwd=ROOT,
        env=_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append(json.loads(body))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/rollgate"
    server.shutdown()
    server.server_close()


def _wait_for(predicate, timeout: float = 45.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    return predicate()


def test_breaching_samples_open_an_incident_pause_the_release_and_call_the_webhook(worker, receiver, tmp_path):
    Guardrail.objects.filter(scope="risk_level").delete()
    author = UserFactory(username="ana.author", groups=["Authors"])
    release = put_live(make_release(author=author, solution=SolutionFactory()))
    make_guardrail(
        release, MetricDefinition.objects.get(key="error_rate"), action=GuardrailAction.PAUSE, severity="sev2"
    )
    NotificationEndpoint.objects.create(name="local receiver", channel="webhook", target=receiver)

    start = (timezone.now().replace(minute=0, second=0, microsecond=0)) - timezone.timedelta(hours=2)
    end = start + timezone.timedelta(hours=1)
    csv_path = tmp_path / "breach.csv"
    csv_path.write_text(
        "release,metric,market,window_start,window_end,numerator,denominator\n"
        f"{release.pk},error_rate,US,{start.isoformat()},{end.isoformat()},250,1000\n",
        encoding="utf-8",
    )
    # The metrics pipeline's path: the CSV command stores the samples and enqueues an evaluation on commit.
    subprocess.run(
        [sys.executable, "manage.py", "ingest_metrics", str(csv_path)],
        cwd=ROOT,
        env=_env(),
        check=True,
        capture_output=True,
        timeout=60,
    )

    incident = _wait_for(lambda: Incident.objects.filter(release=release).first())
    assert incident is not None, (tmp_path / "worker.log").read_text()[-4000:]
    assert incident.status == IncidentStatus.TRIGGERED
    paused = _wait_for(lambda: Release.objects.get(pk=release.pk).status == ReleaseStatus.PAUSED)
    assert paused, (tmp_path / "worker.log").read_text()[-4000:]
    assert _wait_for(lambda: len(_Receiver.received) >= 1), (tmp_path / "worker.log").read_text()[-4000:]
    events = {payload["event"] for payload in _Receiver.received}
    assert "opened" in events
    assert all(payload["incident"]["id"] == incident.pk for payload in _Receiver.received)
