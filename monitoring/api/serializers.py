from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from ..choices import MANUAL_RESOLUTIONS
from ..models import (
    Evaluation,
    Guardrail,
    Incident,
    IncidentEvent,
    MetricDefinition,
    MetricSample,
    NotificationEndpoint,
    NotificationOutbox,
)
from ..services.guardrails import EDITABLE_FIELDS
from ..services.incidents import INCIDENT_LIFECYCLE_FIELDS, INCIDENT_TRIAGE_FIELDS
from ..services.notifications import dead_letter_counts


class MetricDefinitionSerializer(serializers.ModelSerializer[MetricDefinition]):
    class Meta:
        model = MetricDefinition
        fields = [
            "id",
            "key",
            "name",
            "kind",
            "direction",
            "numerator_definition",
            "denominator_definition",
            "unit",
            "version",
            "maturation_period",
            "min_value",
            "max_value",
            "unit_of_analysis",
            "design_effect",
            "slow_threshold_ms",
            "source_of_record",
        ]


class MetricSampleSerializer(serializers.ModelSerializer[MetricSample]):
    metric: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="key", read_only=True)

    class Meta:
        model = MetricSample
        fields = [
            "id",
            "source",
            "release",
            "metric",
            "metric_version",
            "market",
            "arm",
            "window_start",
            "window_end",
            "numerator",
            "denominator",
            "value",
            "units",
            "sum_x",
            "sum_y",
            "sum_xx",
            "sum_yy",
            "sum_xy",
            "received_at",
        ]
        read_only_fields = fields


class MetricSampleInputSerializer(serializers.Serializer[Any]):
    """One row of the POSTed list; the service validates them all at once (documentation only)."""

    release = serializers.IntegerField()
    metric = serializers.CharField(help_text="Metric key, e.g. 'escalation_rate'.")
    market = serializers.CharField(max_length=16)
    arm = serializers.ChoiceField(choices=["treatment", "control"], required=False)
    source = serializers.CharField(max_length=64, required=False)  # type: ignore[assignment]
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()
    numerator = serializers.IntegerField(required=False)
    denominator = serializers.IntegerField(required=False)
    value = serializers.FloatField(required=False)
    units = serializers.IntegerField(required=False, help_text="Conversations behind a turn-level rate (delta method).")
    sum_x = serializers.FloatField(required=False, help_text="Σ numerator per conversation (= numerator).")
    sum_y = serializers.FloatField(required=False, help_text="Σ denominator per conversation (= denominator).")
    sum_xx = serializers.FloatField(required=False, help_text="Σ numerator² per conversation.")
    sum_yy = serializers.FloatField(required=False, help_text="Σ denominator² per conversation.")
    sum_xy = serializers.FloatField(required=False, help_text="Σ numerator·denominator per conversation.")


class IngestResultSerializer(serializers.Serializer[Any]):
    rows = serializers.IntegerField()
    releases = serializers.ListField(child=serializers.IntegerField())


class GuardrailSerializer(serializers.ModelSerializer[Guardrail]):
    metric: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="key", queryset=MetricDefinition.objects.all()
    )

    class Meta:
        model = Guardrail
        fields = ["id", *EDITABLE_FIELDS, "created_by", "created_at", "updated_at"]
        read_only_fields = ["id", "created_by", "created_at", "updated_at"]
        # The model's clean() (run by the service) checks the scope/target combination.
        validators: list[Any] = []


class EvaluationSerializer(serializers.ModelSerializer[Evaluation]):
    guardrail_name = serializers.CharField(source="guardrail.name", read_only=True)
    metric = serializers.CharField(source="guardrail.metric.key", read_only=True)

    class Meta:
        model = Evaluation
        fields = [
            "id",
            "guardrail",
            "guardrail_name",
            "metric",
            "release",
            "market",
            "window_start",
            "window_end",
            "outcome",
            "observed",
            "lower",
            "upper",
            "n",
            "baseline",
            "baseline_n",
            "baseline_source",
            "difference_lower",
            "difference_upper",
            "reason",
            "samples",
            "data_through",
            "confidence",
            "sequences",
            "variance_method",
            "sample_ratio_mismatch",
            "failures",
            "consecutive_passes",
            "breached",
            "dry_run",
            "detail",
            "evaluated_at",
        ]
        read_only_fields = fields


class IncidentEventSerializer(serializers.ModelSerializer[IncidentEvent]):
    actor = serializers.CharField(source="actor_label", read_only=True)

    class Meta:
        model = IncidentEvent
        fields = ["id", "kind", "created_at", "actor", "message", "data", "evaluation"]
        read_only_fields = fields


class IncidentSerializer(serializers.ModelSerializer[Incident]):
    assignee: serializers.StringRelatedField[Any] = serializers.StringRelatedField()
    metric = serializers.CharField(source="guardrail.metric.key", read_only=True)
    release_title = serializers.CharField(source="release.title", read_only=True)

    class Meta:
        model = Incident
        fields = ["id", *INCIDENT_LIFECYCLE_FIELDS, "kind", *INCIDENT_TRIAGE_FIELDS, "release_title", "metric"]
        read_only_fields = fields


class IncidentDetailSerializer(IncidentSerializer):
    timeline = IncidentEventSerializer(source="events", many=True, read_only=True)
    notifications_dead = serializers.SerializerMethodField(
        help_text="Notifications of this incident whose retries ran out (redrive them)."
    )

    class Meta(IncidentSerializer.Meta):
        fields = [*IncidentSerializer.Meta.fields, "timeline", "notifications_dead"]
        read_only_fields = fields

    def get_notifications_dead(self, incident: Incident) -> int:
        return dead_letter_counts(incident_ids=[incident.pk]).get(incident.pk, 0)


class AssignInputSerializer(serializers.Serializer[Any]):
    assignee = serializers.PrimaryKeyRelatedField(queryset=get_user_model().objects.filter(is_active=True))


class CommentInputSerializer(serializers.Serializer[Any]):
    message = serializers.CharField(max_length=5000)


class MitigateInputSerializer(serializers.Serializer[Any]):
    note = serializers.CharField(max_length=5000)


class ResolveInputSerializer(serializers.Serializer[Any]):
    resolution = serializers.ChoiceField(choices=MANUAL_RESOLUTIONS)
    note = serializers.CharField(max_length=5000)


# --- notification endpoints and deliveries (issue 8) -------------------------------------------------------------


class NotificationEndpointSerializer(serializers.ModelSerializer[NotificationEndpoint]):
    class Meta:
        model = NotificationEndpoint
        fields = ["id", "name", "channel", "target", "min_severity", "is_active"]
        read_only_fields = ["id"]


class NotificationOutboxSerializer(serializers.ModelSerializer[NotificationOutbox]):
    event = serializers.CharField(source="payload.event", read_only=True)

    class Meta:
        model = NotificationOutbox
        fields = [
            "id",
            "incident",
            "event",
            "endpoint",
            "channel",
            "target",
            "status",
            "attempts",
            "max_attempts",
            "next_attempt_at",
            "last_error",
            "created_at",
            "sent_at",
            "dead_at",
            "redrive_count",
        ]
        read_only_fields = fields


class RedriveInputSerializer(serializers.Serializer[Any]):
    """Exactly one of: ``ids`` (outbox rows), ``incident`` (its dead letters), ``all: true`` (every dead letter)."""

    ids = serializers.ListField(child=serializers.IntegerField(min_value=1), required=False, max_length=10_000)
    incident = serializers.PrimaryKeyRelatedField(queryset=Incident.objects.all(), required=False)
    all = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        chosen = ("ids" in attrs) + ("incident" in attrs) + bool(attrs.get("all"))
        if chosen != 1:
            raise serializers.ValidationError("Send exactly one of ids, incident, or all: true.")
        return attrs


class RedriveResultSerializer(serializers.Serializer[Any]):
    redriven = serializers.ListField(child=serializers.IntegerField())
