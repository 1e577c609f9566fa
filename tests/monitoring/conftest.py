from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from monitoring.choices import GuardrailScope
from monitoring.models import Guardrail, MetricDefinition, NotificationEndpoint
from releases.choices import ReleaseStatus
from releases.models import Release
from tests.factories import make_release


@pytest.fixture
def no_default_guardrails(db: Any) -> None:
    # The seeded per-risk-level defaults would evaluate too; tests state their own guardrails.
    Guardrail.objects.filter(scope=GuardrailScope.RISK_LEVEL).delete()


def put_live(release: Any, status: str = ReleaseStatus.ROLLING_OUT, *, stage_age: timedelta = timedelta(0)) -> Any:
    """Place a release in a live state directly.

    Monitoring's tests start where governance ends; walking the approval policy and checklists here would tie
    them to governance's fixtures. Status is set as test setup only; every transition monitoring itself makes
    goes through the release services.
    """
    stage = release.ordered_stages[0]
    now = timezone.now()
    Release.objects.filter(pk=release.pk).update(
        status=status,
        current_stage=stage,
        stage_started_at=now - stage_age,
        rollout_started_at=now - stage_age,
        verification_started_at=now if status == ReleaseStatus.VERIFYING else None,
    )
    release.refresh_from_db()
    return release


@pytest.fixture
def rolling_release(author: Any, solution: Any, no_default_guardrails: None) -> Any:
    return put_live(make_release(author=author, solution=solution))


@pytest.fixture
def error_rate(db: Any) -> MetricDefinition:
    return MetricDefinition.objects.get(key="error_rate")


@pytest.fixture
def csat(db: Any) -> MetricDefinition:
    return MetricDefinition.objects.get(key="csat")


def make_guardrail(release: Any, metric: MetricDefinition, **fields: Any) -> Guardrail:
    values: dict[str, Any] = {
        "name": f"{metric.key} guardrail",
        "metric": metric,
        "scope": GuardrailScope.RELEASE,
        "release": release,
        "absolute_threshold": 0.05,
        "min_sample_size": 100,
        "evaluation_interval": timedelta(minutes=1),
        "failure_limit": 0,
        "consecutive_success_limit": 2,
    }
    values.update(fields)
    guardrail = Guardrail(**values)
    guardrail.full_clean()
    guardrail.save()
    return guardrail


def sample_row(release: Any, metric: str, *, market: str = "US", numerator: int, denominator: int, **extra: Any):
    start = extra.pop("window_start", None) or (timezone.now() - timedelta(hours=2)).replace(
        minute=0, second=0, microsecond=0
    )
    row = {
        "release": release.pk,
        "metric": metric,
        "market": market,
        "window_start": start.isoformat(),
        "window_end": (start + timedelta(hours=1)).isoformat(),
        "numerator": numerator,
        "denominator": denominator,
    }
    row.update(extra)
    return row


@pytest.fixture
def webhook_endpoint(db: Any) -> NotificationEndpoint:
    return NotificationEndpoint.objects.create(name="ops hook", channel="webhook", target="http://127.0.0.1:9/hook")


def ingest(*rows: dict[str, Any]) -> None:
    from monitoring.services import metric_samples_ingest

    metric_samples_ingest(rows=list(rows), enqueue=False)


def minutes(n: int) -> timedelta:
    return timedelta(minutes=n)
