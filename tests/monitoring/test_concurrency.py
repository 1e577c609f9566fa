"""Concurrency on real PostgreSQL: threads with their own connections and transactions."""

from __future__ import annotations

import pytest
from django.utils import timezone

from monitoring.models import Evaluation, Guardrail, Incident
from monitoring.services import guardrails_evaluate, incident_trigger
from tests.concurrency import raised, run_at_once
from tests.factories import SolutionFactory, UserFactory, make_release

from .conftest import ingest, make_guardrail, put_live, sample_row

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def failing_release():
    Guardrail.objects.filter(scope="risk_level").delete()
    author = UserFactory(username="ana.author", groups=["Authors"])
    release = put_live(make_release(author=author, solution=SolutionFactory()))
    from monitoring.models import MetricDefinition

    guardrail = make_guardrail(release, MetricDefinition.objects.get(key="error_rate"))
    ingest(sample_row(release, "error_rate", numerator=300, denominator=1000))
    return release, guardrail


def test_two_evaluation_cycles_at_once_write_one_evaluation_per_window_and_one_incident(failing_release):
    release, _guardrail = failing_release
    now = timezone.now()
    errors = raised(run_at_once(*[lambda: guardrails_evaluate(now=now)] * 4))
    assert errors == []
    assert Evaluation.objects.filter(release=release).count() == 2  # US and DE, once each
    incident = Incident.objects.get()
    assert incident.trigger_count == 1


def test_fifty_threads_triggering_one_key_leave_one_open_incident(failing_release):
    release, guardrail = failing_release
    guardrail = Guardrail.objects.select_related("metric").get(pk=guardrail.pk)

    def trigger() -> None:
        incident_trigger(guardrail=guardrail, release_id=release.pk, market="US", evaluation=None, now=timezone.now())

    errors = raised(run_at_once(*[trigger] * 50))
    assert errors == []
    incident = Incident.objects.open().get()
    assert incident.trigger_count == 50
    assert incident.events.count() == 50  # one opened + 49 retriggered
