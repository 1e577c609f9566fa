from __future__ import annotations

from django.db.models import QuerySet
from django_filters import rest_framework as filters

from .choices import OPEN_INCIDENT_STATES, IncidentStatus, Outcome, Severity
from .models import Evaluation, Guardrail, Incident, MetricSample


class MetricSampleFilter(filters.FilterSet):
    metric = filters.CharFilter(field_name="metric__key")
    window_start_after = filters.IsoDateTimeFilter(field_name="window_start", lookup_expr="gte")
    window_start_before = filters.IsoDateTimeFilter(field_name="window_start", lookup_expr="lt")

    class Meta:
        model = MetricSample
        fields = ["release", "metric", "market", "arm", "source"]


class GuardrailFilter(filters.FilterSet):
    metric = filters.CharFilter(field_name="metric__key")

    class Meta:
        model = Guardrail
        fields = ["scope", "release", "solution", "risk_level", "metric", "action", "severity", "is_active", "dry_run"]


class EvaluationFilter(filters.FilterSet):
    outcome = filters.MultipleChoiceFilter(choices=Outcome.choices)
    window_end_after = filters.IsoDateTimeFilter(field_name="window_end", lookup_expr="gte")
    window_end_before = filters.IsoDateTimeFilter(field_name="window_end", lookup_expr="lt")

    class Meta:
        model = Evaluation
        fields = ["release", "guardrail", "market", "outcome", "breached", "dry_run"]


class IncidentFilter(filters.FilterSet):
    status = filters.MultipleChoiceFilter(choices=IncidentStatus.choices)
    severity = filters.MultipleChoiceFilter(choices=Severity.choices)
    unacknowledged = filters.BooleanFilter(method="filter_unacknowledged", label="Open and not acknowledged")
    open = filters.BooleanFilter(method="filter_open", label="Not resolved")

    class Meta:
        model = Incident
        fields = ["status", "severity", "release", "assignee", "guardrail", "market"]

    def filter_unacknowledged(self, queryset: QuerySet[Incident], name: str, value: bool | None) -> QuerySet[Incident]:
        if value is None:
            return queryset
        condition = {"status": IncidentStatus.TRIGGERED}
        return queryset.filter(**condition) if value else queryset.exclude(**condition)

    def filter_open(self, queryset: QuerySet[Incident], name: str, value: bool | None) -> QuerySet[Incident]:
        if value is None:
            return queryset
        return (
            queryset.filter(status__in=OPEN_INCIDENT_STATES)
            if value
            else queryset.exclude(status__in=OPEN_INCIDENT_STATES)
        )
