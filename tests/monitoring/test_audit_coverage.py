"""Every service that writes a governed (history-tracked) monitoring row writes an AuditEvent for that row.

The walk is over ``monitoring.services.__all__``: a new service must either appear in a scenario below (and then
every history row it writes must have an audit event naming the same object) or be listed in ``NOT_GOVERNED`` with
the reason it writes no governed state. So a service added without an audit event fails here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.utils import timezone
from simple_history.models import HistoricalChanges
from simple_history.signals import post_create_historical_record

from core.models import AuditEvent
from core.roles import ON_CALL
from monitoring import services
from monitoring.choices import Resolution
from monitoring.models import Guardrail, Incident, MetricDefinition, NotificationEndpoint
from tests.factories import UserFactory

from .conftest import ingest, make_guardrail, sample_row

pytestmark = pytest.mark.django_db

# Services that write no history-tracked row, and why.
NOT_GOVERNED = {
    # Metric samples are data, not governed state: bulk-upserted (no history), their provenance is the source.
    "metric_samples_ingest": "writes MetricSample rows (data, no history)",
    # Timeline rows are the incident's own append-only log; the state changes they accompany are audited.
    "incident_event_add": "writes IncidentEvent (timeline) and outbox rows",
    # Evaluations are immutable machine records; incidents they open or resolve are audited (incident_trigger,
    # incident_resolve), release actions by releases.services.
    "guardrails_evaluate": "writes Evaluation rows; incidents through incident_trigger / incident_resolve",
    "guardrail_action_apply": "moves the release through releases.services (audited there) and adds a timeline event",
    "rollout_automate": "moves releases through releases.services (audited there)",
    "guardrails_guard": "a read-only guard",
    "release_guardrail_status": "a read",
    "notification_deliver": "writes NotificationOutbox delivery state (no history) and a timeline event",
    "notifications_due": "a read",
    "dead_letter_counts": "a read",
    "notification_redrive": "resets NotificationOutbox delivery state (no history); audited per row",
}

GOVERNED_MODELS = {
    model._meta.label_lower
    for model in apps.get_app_config("monitoring").get_models()
    if hasattr(model._meta, "simple_history_manager_attribute")
}


@contextmanager
def _history_rows() -> Iterator[list[tuple[str, str]]]:
    written: list[tuple[str, str]] = []

    def record(sender: Any, instance: Any, history_instance: HistoricalChanges, **kwargs: Any) -> None:
        written.append((instance._meta.label_lower, str(instance.pk)))

    post_create_historical_record.connect(record, weak=False)
    try:
        yield written
    finally:
        post_create_historical_record.disconnect(record)


@pytest.fixture
def second_oncall(db: Any) -> Any:
    return UserFactory(username="olly.oncall", groups=[ON_CALL])


class Walk:
    def __init__(self) -> None:
        self.covered: set[str] = set()
        self.models_written: set[str] = set()
        self.problems: list[str] = []

    def run(self, name: str, call: Callable[[], Any]) -> Any:
        self.covered.add(name)
        last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        with _history_rows() as written:
            result = call()
        audited = set(AuditEvent.objects.filter(id__gt=last).values_list("object_type", "object_id"))
        governed = [row for row in written if row[0] in GOVERNED_MODELS]
        if not governed:
            self.problems.append(f"{name}: the scenario wrote no governed row, so it proves nothing")
        for row in governed:
            self.models_written.add(row[0])
            if row not in audited:
                self.problems.append(f"{name} wrote {row[0]} #{row[1]} without an AuditEvent")
        return result


def test_every_monitoring_service_that_writes_governed_state_writes_an_audit_event(
    rolling_release, error_rate, oncall, second_oncall, program_manager, superuser
):
    walk = Walk()
    pm = program_manager
    guardrail = walk.run(
        "guardrail_create",
        lambda: services.guardrail_create(
            actor=pm, name="errors", metric=error_rate, scope="release", release=rolling_release,
            absolute_threshold=0.05, min_sample_size=100, evaluation_interval=timedelta(minutes=1),
            failure_limit=0, consecutive_success_limit=1,
        ),
    )  # fmt: skip
    walk.run("guardrail_update", lambda: services.guardrail_update(guardrail=guardrail, actor=pm, severity="sev4"))
    endpoint = walk.run(
        "notification_endpoint_create",
        lambda: services.notification_endpoint_create(
            actor=pm, name="pager", channel="email", target="oncall@example.com", min_severity="sev2"
        ),
    )
    walk.run(
        "notification_endpoint_update",
        lambda: services.notification_endpoint_update(endpoint=endpoint, actor=pm, min_severity="sev1"),
    )
    walk.run(
        "metric_definition_update",
        lambda: services.metric_definition_update(metric=error_rate, actor=superuser, unit="turns"),
    )

    # A failing look opens an incident (system), a second one retriggers it.
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    now = timezone.now()
    services.guardrails_evaluate(now=now)
    opened = Incident.objects.get()
    evaluation = opened.events.get().evaluation
    walk.run(
        "incident_trigger",
        lambda: services.incident_trigger(
            guardrail=guardrail, release_id=rolling_release.pk, market="US", evaluation=evaluation, now=now
        ),
    )
    walk.run(
        "incident_open_data_quality",
        lambda: services.incident_open_data_quality(
            guardrail=guardrail, release_id=rolling_release.pk, market="DE", evaluation=evaluation, now=now
        ),
    )
    walk.run("incidents_escalate_overdue", lambda: services.incidents_escalate_overdue(now=now + timedelta(days=2)))
    second = make_guardrail(rolling_release, error_rate, name="second")
    services.incident_trigger(guardrail=second, release_id=rolling_release.pk, market="US", evaluation=None, now=now)
    walk.run(
        "incident_escalate",
        lambda: services.incident_escalate(
            incident=Incident.objects.get(guardrail=second), now=now + timedelta(days=2)
        ),
    )
    walk.run("incident_acknowledge", lambda: services.incident_acknowledge(incident=opened, actor=oncall))
    walk.run("incident_assign", lambda: services.incident_assign(incident=opened, actor=oncall, assignee=second_oncall))
    walk.run("incident_mitigate", lambda: services.incident_mitigate(incident=opened, actor=oncall, note="rolled flag"))
    walk.run(
        "incident_resolve",
        lambda: services.incident_resolve(incident=opened, actor=oncall, resolution=Resolution.FIXED, note="fixed"),
    )
    # The system's auto-recovery is a resolve with no person: audited all the same.
    walk.run(
        "incident_resolve",
        lambda: services.incident_resolve(
            incident=Incident.objects.get(guardrail=second), actor=None, resolution=Resolution.AUTO_RECOVERED
        ),
    )

    # A comment writes no history row (the incident is untouched) but is still an audited act of a person.
    before = AuditEvent.objects.count()
    services.incident_comment(incident=opened, actor=oncall, message="post-mortem on Monday")
    walk.covered.add("incident_comment")
    assert AuditEvent.objects.filter(action="incident.comment", actor=oncall).count() == 1
    assert AuditEvent.objects.count() == before + 1

    assert walk.problems == []
    assert set(services.__all__) - walk.covered - set(NOT_GOVERNED) == set(), "a service is neither walked nor exempt"
    assert walk.models_written == GOVERNED_MODELS
    assert {Guardrail._meta.label_lower, Incident._meta.label_lower} <= GOVERNED_MODELS
    assert {MetricDefinition._meta.label_lower, NotificationEndpoint._meta.label_lower} <= GOVERNED_MODELS
