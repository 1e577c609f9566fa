from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from core.roles import PROGRAM_MANAGERS
from monitoring.choices import GuardrailScope
from monitoring.models import Guardrail, MetricDefinition, NotificationEndpoint
from releases import services as release_services
from releases.choices import LIVE_STATES, ReleaseStatus
from releases.models import Release
from tests.factories import UserFactory, advance_release, make_release

# How long the releases of most tests have been in their current phase: every sample window tests use (the last
# two days) starts after it, so it belongs to the cohort (METRICS.md: a cohort is the current phase's samples).
PHASE_AGE = timedelta(days=3)


@pytest.fixture
def no_default_guardrails(db: Any) -> None:
    # The seeded per-risk-level defaults would evaluate too; tests state their own guardrails.
    Guardrail.objects.filter(scope=GuardrailScope.RISK_LEVEL).delete()


def put_live(
    release: Release,
    status: str = ReleaseStatus.ROLLING_OUT,
    *,
    program_manager: Any = None,
    stage_age: timedelta | None = None,
) -> Release:
    """Bring a draft to a live state the way people do, then control time.

    ``advance_release`` walks it through the real services: the crew signs the checklists, approvals are recorded
    through governance, and a program manager starts the rollout (promoting with an override up to ``launched``
    or ``verifying``); ``paused`` is a rolling-out release paused through ``release_pause``. ``stage_age`` walks
    it ``stage_age`` ago (time-machine), as if its current stage had been running that long: every row, history
    row and audit event is written as it would have been then, none is rewritten afterwards. By default the
    phase is ``PHASE_AGE`` old, so the samples tests send for the last two days belong to its cohort.
    """
    if stage_age is None:
        stage_age = PHASE_AGE
    if status not in LIVE_STATES:
        raise ValueError(f"{status} is not a live state")
    if program_manager is None:
        program_manager = UserFactory(username="pia.pm", groups=[PROGRAM_MANAGERS])
    walk_to = ReleaseStatus.ROLLING_OUT if status == ReleaseStatus.PAUSED else status
    with time_machine.travel(timezone.now() - stage_age, tick=True):
        release = advance_release(release, walk_to, program_manager=program_manager)
        if status == ReleaseStatus.PAUSED:
            release = release_services.release_pause(
                release=release, actor=program_manager, reason="Holding traffic while support looks at a report"
            )
    release.refresh_from_db()
    assert release.status == status, f"{release} is {release.status}, not {status}"
    return release


@pytest.fixture
def rolling_release(author: Any, solution: Any, program_manager: Any, no_default_guardrails: None) -> Release:
    # Its stage began three days ago, so the samples tests send for the last two days belong to its cohort.
    return put_live(make_release(author=author, solution=solution), program_manager=program_manager)


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
