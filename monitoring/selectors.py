"""Named reads for monitoring, with their joins; nothing here writes."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from .models import Evaluation, Guardrail, Incident, IncidentEvent, MetricDefinition, MetricSample
from .state_machine import INCIDENT_LIFECYCLE, TRIAGE_PERMISSION


def metric_definition_list() -> QuerySet[MetricDefinition]:
    return MetricDefinition.objects.order_by("key")


def metric_sample_list() -> QuerySet[MetricSample]:
    return MetricSample.objects.select_related("metric").order_by("-window_start", "id")


def guardrail_list() -> QuerySet[Guardrail]:
    return Guardrail.objects.select_related("metric").order_by("id")


def evaluation_list() -> QuerySet[Evaluation]:
    return Evaluation.objects.select_related("guardrail", "guardrail__metric").order_by("-window_end", "-id")


def incident_list() -> QuerySet[Incident]:
    return Incident.objects.with_related().order_by("-opened_at", "-id")


def incident_detail() -> QuerySet[Incident]:
    return incident_list().prefetch_related(
        Prefetch("events", queryset=IncidentEvent.objects.select_related("actor").order_by("created_at", "id"))
    )


def incident_fired_by(incident: Incident) -> QuerySet[Evaluation]:
    """The evaluations that opened or retriggered ``incident``."""
    return evaluation_list().filter(incident_events__incident=incident).distinct()


# Assigning is not a state change, so it is not in the table; it comes right after acknowledging.
ASSIGN_TO_ME = "assign_to_me"
TRIAGE_ACTIONS = (INCIDENT_LIFECYCLE.names()[0], ASSIGN_TO_ME, *INCIDENT_LIFECYCLE.names()[1:])


def incident_triage_actions(*, incident: Incident, user: Any) -> list[str]:
    """The triage steps (``TRIAGE_ACTIONS``) this user may take on this incident now, in the order they happen:
    the transitions the lifecycle table allows from the incident's status and the user's permissions, and
    "assign to me" while it is open and someone else's (the services check again)."""
    if not getattr(user, "is_active", False) or not incident.is_open:
        return []
    allowed = {t.name for t in INCIDENT_LIFECYCLE.transitions_from(incident.status) if user.has_perm(t.permission)}
    if user.has_perm(TRIAGE_PERMISSION) and incident.assignee_id != user.pk:
        allowed.add(ASSIGN_TO_ME)
    return [name for name in TRIAGE_ACTIONS if name in allowed]
