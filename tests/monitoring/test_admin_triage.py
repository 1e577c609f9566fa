"""The Triage panel at the top of the incident page: buttons per status and role, each calling its service."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent
from core.roles import ON_CALL
from monitoring import services
from monitoring.choices import IncidentEventKind, IncidentStatus, Resolution
from monitoring.models import Incident, IncidentEvent, NotificationOutbox
from monitoring.services import guardrails_evaluate
from tests.conftest import admin_as
from tests.factories import UserFactory

from .conftest import ingest, make_guardrail, sample_row

pytestmark = pytest.mark.django_db

BUTTONS = {
    "acknowledge": 'value="Acknowledge"',
    "assign_to_me": 'value="Assign to me"',
    "mitigate": 'value="Mitigate"',
    "resolve": 'value="Resolve"',
}


@pytest.fixture
def incident(rolling_release, error_rate, webhook_endpoint) -> Incident:
    make_guardrail(rolling_release, error_rate)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    guardrails_evaluate()
    return Incident.objects.get()


@pytest.fixture
def second_oncall(db: Any) -> Any:
    return UserFactory(username="olly.oncall", groups=[ON_CALL])


def _messages(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def _page(user: Any, incident: Incident) -> str:
    response = admin_as(user).get(reverse("admin:monitoring_incident_change", args=[incident.pk]))
    assert response.status_code == 200
    return response.content.decode()


def _buttons(page: str) -> set[str]:
    return {name for name, marker in BUTTONS.items() if marker in page}


def _post(user: Any, incident: Incident, action: str, data: dict[str, str] | None = None) -> Any:
    response = admin_as(user).post(reverse("admin:monitoring_incident_triage", args=[incident.pk, action]), data or {})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:monitoring_incident_change", args=[incident.pk])
    return response


def _written(incident: Incident) -> tuple[int, ...]:
    """Everything a triage step writes: the row's history, the timeline, the audit log, the outbox."""
    return (
        incident.history.count(),
        IncidentEvent.objects.filter(incident=incident).count(),
        AuditEvent.objects.count(),
        NotificationOutbox.objects.count(),
    )


def _to_status(incident: Incident, status: str, by: Any) -> Incident:
    """Walk the incident to ``status`` through the services, as ``by``."""
    if status in (IncidentStatus.ACKNOWLEDGED, IncidentStatus.MITIGATED):
        incident = services.incident_acknowledge(incident=incident, actor=by)
    if status == IncidentStatus.MITIGATED:
        incident = services.incident_mitigate(incident=incident, actor=by, note="Traffic shifted to the old flow")
    if status == IncidentStatus.RESOLVED:
        incident = services.incident_resolve(
            incident=incident, actor=by, resolution=Resolution.FIXED, note="Provider recovered"
        )
    return incident


# --- the panel ------------------------------------------------------------------------------------------------


def test_panel_sits_above_the_form_with_the_incident_at_a_glance(oncall, incident):
    page = _page(oncall, incident)
    panel = page.index('id="triage-panel"')
    assert panel < page.index('id="incident_form"')
    summary = page[panel : page.index('id="triage-buttons"')]
    assert "Triggered" in summary and incident.get_severity_display() in summary
    assert "unassigned" in summary
    assert "Acknowledge by" in summary and "in " in summary  # a SEV3 incident opened just now: hours left


@pytest.mark.parametrize(
    ("status", "by", "expected"),
    [
        (IncidentStatus.TRIGGERED, None, {"acknowledge", "assign_to_me", "mitigate", "resolve"}),
        (IncidentStatus.ACKNOWLEDGED, "oncall", {"mitigate", "resolve"}),  # acknowledging assigned it to me
        (IncidentStatus.ACKNOWLEDGED, "second_oncall", {"assign_to_me", "mitigate", "resolve"}),
        (IncidentStatus.MITIGATED, "oncall", {"resolve"}),
        (IncidentStatus.MITIGATED, "second_oncall", {"assign_to_me", "resolve"}),
        (IncidentStatus.RESOLVED, "oncall", set()),
    ],
)
def test_oncall_sees_the_buttons_legal_in_each_status(request, oncall, incident, status, by, expected):
    if by is not None:
        incident = _to_status(incident, status, request.getfixturevalue(by))
    page = _page(oncall, incident)
    assert _buttons(page) == expected
    if not expected:
        assert 'id="triage-buttons"' not in page and "nothing is left to triage" in page


def test_overdue_acknowledgement_is_flagged(oncall, incident):
    assert "overdue by" not in _page(oncall, incident)
    # Two days later, past every severity's deadline.
    with time_machine.travel(timezone.now() + timedelta(days=2)):
        assert "overdue by" in _page(oncall, incident)


# --- each button ----------------------------------------------------------------------------------------------


def test_acknowledge_button(oncall, incident):
    response = _post(oncall, incident, "acknowledge")
    incident.refresh_from_db()
    assert (incident.status, incident.assignee) == (IncidentStatus.ACKNOWLEDGED, oncall)
    assert incident.events.filter(kind=IncidentEventKind.ACKNOWLEDGED, actor=oncall).exists()
    assert AuditEvent.objects.filter(action="incident.acknowledge", actor=oncall, to_state="acknowledged").exists()
    assert incident.history.first().history_user == oncall
    assert any("is acknowledged" in m for m in _messages(response))


def test_assign_to_me_button(oncall, second_oncall, incident):
    incident = _to_status(incident, IncidentStatus.ACKNOWLEDGED, second_oncall)
    response = _post(oncall, incident, "assign_to_me")
    incident.refresh_from_db()
    assert incident.assignee == oncall
    assert incident.events.filter(kind=IncidentEventKind.ASSIGNED, actor=oncall).exists()
    assert incident.history.first().history_user == oncall
    assert any("assigned to otto.oncall" in m for m in _messages(response))


def test_mitigate_button(oncall, incident):
    response = _post(oncall, incident, "mitigate", {"note": "Rolled traffic back to the old flow"})
    incident.refresh_from_db()
    assert incident.status == IncidentStatus.MITIGATED
    assert incident.events.filter(
        kind=IncidentEventKind.MITIGATED, actor=oncall, message="Rolled traffic back to the old flow"
    ).exists()
    assert AuditEvent.objects.filter(
        action="incident.mitigate", actor=oncall, from_state="triggered", reason="Rolled traffic back to the old flow"
    ).exists()
    assert any("is mitigated" in m for m in _messages(response))


def test_resolve_button(oncall, incident):
    outbox = NotificationOutbox.objects.count()
    response = _post(oncall, incident, "resolve", {"resolution": "false_positive", "note": "Synthetic test traffic"})
    incident.refresh_from_db()
    assert (incident.status, incident.resolution, incident.resolution_note) == (
        IncidentStatus.RESOLVED,
        Resolution.FALSE_POSITIVE,
        "Synthetic test traffic",
    )
    assert incident.events.filter(kind=IncidentEventKind.RESOLVED, actor=oncall).exists()
    assert AuditEvent.objects.filter(action="incident.resolve", actor=oncall, to_state="resolved").exists()
    assert NotificationOutbox.objects.count() > outbox  # resolving pages the endpoints, as the service does
    assert any("is resolved" in m for m in _messages(response))


def test_the_resolution_select_offers_only_manual_resolutions(oncall, incident):
    page = _page(oncall, incident)
    assert 'value="fixed"' in page and 'value="false_positive"' in page and 'value="rolled_back"' in page
    assert 'value="auto_recovered"' not in page


# --- refusals write nothing -----------------------------------------------------------------------------------


def test_acknowledging_twice_shows_the_domain_error_and_writes_nothing(oncall, incident):
    _post(oncall, incident, "acknowledge")
    before = _written(incident)
    response = _post(oncall, incident, "acknowledge")
    assert _messages(response) == [
        "Acknowledge refused: Only a triggered incident can be acknowledged; this one is acknowledged."
    ]
    assert _written(incident) == before


@pytest.mark.parametrize(
    ("status", "action", "data", "error"),
    [
        (IncidentStatus.TRIGGERED, "mitigate", {"note": "   "}, "Say what was done to mitigate."),
        (IncidentStatus.TRIGGERED, "resolve", {"resolution": "fixed", "note": ""}, "Say how it was resolved."),
        (IncidentStatus.TRIGGERED, "resolve", {"resolution": "auto_recovered", "note": ""}, "pick a resolution"),
        (IncidentStatus.TRIGGERED, "resolve", {"resolution": "", "note": "done"}, "pick a resolution"),
        (IncidentStatus.MITIGATED, "acknowledge", {}, "Only a triggered incident"),
        (IncidentStatus.MITIGATED, "mitigate", {"note": "again"}, "Cannot mitigate an incident that is mitigated"),
        (IncidentStatus.RESOLVED, "resolve", {"resolution": "fixed", "note": "x"}, "already resolved"),
        (IncidentStatus.RESOLVED, "assign_to_me", {}, "cannot be reassigned"),
        (IncidentStatus.RESOLVED, "mitigate", {"note": "x"}, "Cannot mitigate an incident that is resolved"),
    ],
)
def test_illegal_or_incomplete_steps_are_refused(oncall, second_oncall, incident, status, action, data, error):
    incident = _to_status(incident, status, second_oncall)
    before = _written(incident)
    status_before = Incident.objects.get(pk=incident.pk).status
    response = _post(oncall, incident, action, data)
    messages = _messages(response)
    assert len(messages) == 1 and "refused" in messages[0] and error in messages[0], messages
    assert _written(incident) == before
    assert Incident.objects.get(pk=incident.pk).status == status_before


def test_auditor_sees_no_buttons_and_is_refused(auditor, incident):
    page = _page(auditor, incident)
    assert 'id="triage-panel"' in page  # the status at a glance is for everyone who reads incidents
    assert _buttons(page) == set() and 'id="triage-buttons"' not in page
    assert "can read this incident but not triage it" in page
    before = _written(incident)
    for action, data in [
        ("acknowledge", {}),
        ("assign_to_me", {}),
        ("mitigate", {"note": "n"}),
        ("resolve", {"resolution": "fixed", "note": "n"}),
    ]:
        response = _post(auditor, incident, action, data)
        assert any("refused: your role does not allow you to triage" in m for m in _messages(response))
    assert _written(incident) == before
    incident.refresh_from_db()
    assert (incident.status, incident.assignee) == (IncidentStatus.TRIGGERED, None)


def test_outsider_cannot_see_or_triage(outsider, incident):
    before = _written(incident)
    response = admin_as(outsider).post(reverse("admin:monitoring_incident_triage", args=[incident.pk, "acknowledge"]))
    assert response.status_code == 302 and response["Location"] == reverse("admin:index")
    assert _written(incident) == before


def test_get_and_unknown_actions_change_nothing(oncall, incident):
    before = _written(incident)
    client = admin_as(oncall)
    change_url = reverse("admin:monitoring_incident_change", args=[incident.pk])
    assert client.get(reverse("admin:monitoring_incident_triage", args=[incident.pk, "acknowledge"]))["Location"] == (
        change_url
    )
    assert client.post(reverse("admin:monitoring_incident_triage", args=[incident.pk, "delete"]))["Location"] == (
        change_url
    )
    assert _written(incident) == before
    missing = client.post(reverse("admin:monitoring_incident_triage", args=[incident.pk + 999, "acknowledge"]))
    assert missing.status_code == 404


# --- queries --------------------------------------------------------------------------------------------------


def test_change_page_queries_do_not_grow_with_the_timeline(oncall, incident, django_assert_max_num_queries):
    client = admin_as(oncall)
    url = reverse("admin:monitoring_incident_change", args=[incident.pk])
    client.get(url)
    with CaptureQueriesContext(connection) as short:
        assert client.get(url).status_code == 200
    for n in range(15):
        services.incident_comment(incident=incident, actor=oncall, message=f"Looking, step {n}")
    with django_assert_max_num_queries(len(short.captured_queries)):
        assert client.get(url).status_code == 200
    # Session, user, user and group permissions, the incident with its release, solution, guardrail and assignee
    # (twice: the panel and the form), the timeline, the assignee choices, the evaluations that fired it; the
    # "what fired it" panel adds its chart's looks, the firing look and the notification deliveries.
    assert len(short.captured_queries) <= 12, "\n".join(q["sql"][:150] for q in short.captured_queries)


def test_every_triage_action_has_a_button_and_a_view():
    from monitoring.admin import TRIAGE_LABELS
    from monitoring.selectors import TRIAGE_ACTIONS

    assert set(TRIAGE_LABELS) == set(TRIAGE_ACTIONS) == set(BUTTONS)
