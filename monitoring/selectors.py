"""Named reads for monitoring, with their joins; nothing here writes."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from .models import Evaluation, Guardrail, Incident, IncidentEvent, MetricDefinition, MetricSample


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
