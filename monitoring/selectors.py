"""Named reads for monitoring, with their joins; nothing here writes."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet

from .choices import ACKNOWLEDGEABLE_STATES, MITIGATABLE_STATES
from .models import Evaluation, Guardrail, Incident, IncidentEvent, MetricDefinition, MetricSample
from .services.incidents import TRIAGE_PERMISSION


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


TRIAGE_ACTIONS = ("acknowledge", "assign_to_me", "mitigate", "resolve")


def incident_triage_actions(*, incident: Incident, user: Any) -> list[str]:
    """The triage steps (``TRIAGE_ACTIONS``) this user may take on this incident now, in the order they happen.

    Mirrors the services' state rules so the admin offers only what would be accepted; the services check again.
    """
    if not getattr(user, "is_active", False) or not user.has_perm(TRIAGE_PERMISSION) or not incident.is_open:
        return []
    actions = []
    if incident.status in ACKNOWLEDGEABLE_STATES:
        actions.append("acknowledge")
    if incident.assignee_id != user.pk:
        actions.append("assign_to_me")
    if incident.status in MITIGATABLE_STATES:
        actions.append("mitigate")
    actions.append("resolve")
    return actions
