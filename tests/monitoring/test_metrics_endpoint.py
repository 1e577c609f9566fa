"""/metrics: who may read it, and that Rollgate's metrics say what the database and the workers did."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.db import OperationalError
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from monitoring.choices import DeliveryStatus, Severity
from monitoring.models import NotificationEndpoint, NotificationOutbox
from monitoring.tasks import evaluate_releases
from tests.conftest import api_as
from tests.factories import UserFactory
from tests.live_database import database_url

from .conftest import make_guardrail, sample_row

pytestmark = pytest.mark.django_db

TOKEN = "scrape-token-0123456789abcdef0123456789abcdef"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def metrics_token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


def scrape(client, token: str = TOKEN) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- who may read it ------------------------------------------------------------------------------------------


def test_without_credentials_it_is_401_with_a_bearer_challenge(client, metrics_token):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"rollgate_" not in response.content


def test_a_wrong_token_an_api_token_or_no_configured_token_is_refused(client, settings):
    settings.METRICS_TOKEN = TOKEN
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x").status_code == 403
    # The API's "Token <key>" scheme is not a metrics credential.
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Token {TOKEN}").status_code == 401
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 403


def test_a_superuser_session_may_read_it_and_other_users_may_not(client, superuser, program_manager, auditor):
    for user in (program_manager, auditor):
        client.force_login(user)
        assert client.get("/metrics").status_code == 403
    client.force_login(superuser)
    assert client.get("/metrics").status_code == 200


def test_only_reads_are_allowed(client, metrics_token):
    response = client.post("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 405


# --- what it says ---------------------------------------------------------------------------------------------


def test_state_gauges_are_read_from_the_database(client, metrics_token, rolling_release, error_rate, oncall):
    NotificationEndpoint.objects.create(name="ops", channel="webhook", target="http://127.0.0.1:9/hook")
    make_guardrail(rolling_release, error_rate, severity=Severity.SEV2)
    rows = [sample_row(rolling_release, "error_rate", numerator=300, denominator=1000)]
    ingested_before = counter("rollgate_ingest_rows_total")
    outcomes = ("pass", "fail", "inconclusive", "insufficient_data", "error")
    looks_before = {outcome: counter("rollgate_evaluations_total", outcome=outcome) for outcome in outcomes}
    runs_before = counter("rollgate_evaluation_cycle_seconds_count")

    assert api_as(oncall).post("/api/v1/metric-samples/", rows, format="json").status_code == 201
    with mock.patch("monitoring.tasks.deliver_notification.delay"):
        looks = evaluate_releases([rolling_release.pk])  # the task the workers run

    pending = NotificationOutbox.objects.get()
    NotificationOutbox.objects.create(
        incident=pending.incident,
        event=pending.event,
        channel="email",
        target="oncall@example.com",
        payload=pending.payload,
        status=DeliveryStatus.DEAD,
        next_attempt_at=timezone.now(),
        created_at=timezone.now() - timedelta(days=2),
        dead_at=timezone.now(),
    )
    NotificationOutbox.objects.filter(pk=pending.pk).update(created_at=timezone.now() - timedelta(minutes=10))

    metrics = scrape(client)
    assert metrics[("rollgate_state_scrape_up", ())] == 1
    assert metrics[("rollgate_incidents_open", (("severity", "sev2"), ("status", "triggered")))] == 1
    assert metrics[("rollgate_incidents_open", (("severity", "sev1"), ("status", "triggered")))] == 0
    assert sum(value for (name, _), value in metrics.items() if name == "rollgate_incidents_open") == 1
    assert metrics[("rollgate_notifications_backlog", ())] == 1
    assert metrics[("rollgate_notifications_dead_letters", ())] == 1
    assert 600 <= metrics[("rollgate_notifications_backlog_oldest_seconds", ())] < 3600
    # Counted by the processes that did the work (this one, here).
    assert metrics[("rollgate_ingest_rows_total", ())] == ingested_before + 1
    looks_counted = {
        outcome: metrics[("rollgate_evaluations_total", (("outcome", outcome),))] - looks_before[outcome]
        for outcome in outcomes
    }
    assert looks_counted["fail"] == 1  # the breaching error rate
    assert sum(looks_counted.values()) == looks
    assert metrics[("rollgate_evaluation_cycle_seconds_count", ())] == runs_before + 1
    # django-prometheus: requests by method, and the database wrapper's query count.
    assert any(name == "django_http_requests_total_by_method_total" for name, _ in metrics)
    assert any(name == "django_db_execute_total" for name, _ in metrics)


def test_an_empty_database_reports_zeros(client, metrics_token):
    metrics = scrape(client)
    assert metrics[("rollgate_notifications_backlog", ())] == 0
    assert metrics[("rollgate_notifications_dead_letters", ())] == 0
    assert metrics[("rollgate_notifications_backlog_oldest_seconds", ())] == 0
    assert sum(value for (name, _), value in metrics.items() if name == "rollgate_incidents_open") == 0


def test_a_scrape_costs_two_queries_whatever_the_rows(client, metrics_token, django_assert_num_queries):
    user = UserFactory(username="scraper-check")  # any row; the queries group by status and severity
    assert user.pk
    with django_assert_num_queries(2):
        client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")


def test_a_database_failure_still_answers_without_the_state_gauges(client, metrics_token):
    with mock.patch("monitoring.metrics.open_incident_counts", side_effect=OperationalError("server closed")):
        metrics = scrape(client)
    assert metrics[("rollgate_state_scrape_up", ())] == 0
    assert not any(name == "rollgate_incidents_open" for name, _ in metrics)


def test_counters_of_several_processes_add_up_in_one_scrape(tmp_path):
    """gunicorn and Celery processes share PROMETHEUS_MULTIPROC_DIR; a scrape of any web process sums them."""
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url(),
    }
    setup = "import django; django.setup(); from monitoring import metrics; "
    for rows in (3, 4):
        subprocess.run(
            [sys.executable, "-c", setup + f"metrics.record_ingested_rows({rows})"], cwd=ROOT, env=env, check=True
        )
    scraped = subprocess.run(
        [
            sys.executable,
            "-c",
            setup + "from core.metrics import scrape_registry; from prometheus_client import generate_latest; "
            "print(generate_latest(scrape_registry()).decode())",
        ],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(scraped)
        for sample in family.samples
        if not sample.labels
    }
    assert values["rollgate_ingest_rows_total"] == 7
    assert values["rollgate_state_scrape_up"] == 1
