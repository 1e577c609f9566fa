"""The incident lifecycle table is the one source of the triage steps: services, API actions, admin buttons."""

from __future__ import annotations

import pytest
from django.urls import reverse

from core.errors import DomainPermissionDenied, IllegalTransition
from core.transitions import MACHINES
from monitoring.admin import TRIAGE_BUTTONS
from monitoring.choices import IncidentStatus, Resolution
from monitoring.models import Incident
from monitoring.services import guardrails_evaluate, incident_acknowledge, incident_resolve
from monitoring.services.incidents import TRANSITION_SERVICES
from monitoring.state_machine import EVENT_KINDS, INCIDENT_LIFECYCLE, REFUSALS

from .conftest import ingest, make_guardrail, sample_row


def test_the_incident_machine_is_registered_and_covers_every_status():
    assert MACHINES["incident"] is INCIDENT_LIFECYCLE
    assert set(INCIDENT_LIFECYCLE.states()) == set(IncidentStatus.values)
    assert INCIDENT_LIFECYCLE.transitions_from(IncidentStatus.RESOLVED) == []


@pytest.mark.parametrize("transition", list(INCIDENT_LIFECYCLE), ids=lambda t: t.name)
def test_every_transition_has_a_service_an_api_action_a_button_and_words(transition):
    assert transition.name in TRANSITION_SERVICES
    assert reverse(f"incident-{transition.url_name}", args=[1]) == f"/api/v1/incidents/1/{transition.url_name}/"
    assert TRIAGE_BUTTONS[transition.name].label == transition.label
    assert transition.name in REFUSALS and transition.name in EVENT_KINDS


@pytest.mark.django_db
def test_the_system_may_only_resolve_and_nothing_is_written_when_refused(rolling_release, error_rate):
    make_guardrail(rolling_release, error_rate)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    guardrails_evaluate()
    incident = Incident.objects.get()
    history = incident.history.count()
    with pytest.raises(DomainPermissionDenied):
        incident_acknowledge(incident=incident, actor=None)  # type: ignore[arg-type]
    assert incident.history.count() == history and incident.events.count() == 1
    resolved = incident_resolve(incident=incident, actor=None, resolution=Resolution.AUTO_RECOVERED)
    assert resolved.status == IncidentStatus.RESOLVED and resolved.history.first().history_user is None
    with pytest.raises(IllegalTransition, match="already resolved"):
        incident_resolve(incident=incident, actor=None, resolution=Resolution.AUTO_RECOVERED)
