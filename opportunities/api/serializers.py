from __future__ import annotations

from typing import Any

from rest_framework import serializers

from releases.choices import Audience
from releases.models import AutomationSolution, Release

from ..models import ContactReasonVolume, Opportunity
from ..scoring import Score


class ContactReasonVolumeSerializer(serializers.ModelSerializer[ContactReasonVolume]):
    solution = serializers.CharField(source="served_by")

    class Meta:
        model = ContactReasonVolume
        fields = [
            "id",
            "source",
            "contact_reason",
            "market",
            "audience",
            "arm",
            "solution",
            "window_start",
            "window_end",
            "conversations",
            "handed_to_human",
            "abandoned",
            "avg_handle_minutes",
            "csat_responses",
            "csat_positive",
            "received_at",
        ]


class ContactReasonVolumeInputSerializer(serializers.Serializer[Any]):
    """One row of the POSTed list (documentation only: rows are validated together by the ingestion service)."""

    contact_reason = serializers.SlugField(max_length=80)
    market = serializers.CharField(max_length=16)
    audience = serializers.ChoiceField(choices=Audience.choices)
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()
    conversations = serializers.IntegerField(min_value=0)
    handed_to_human = serializers.IntegerField(min_value=0)
    abandoned = serializers.IntegerField(min_value=0)
    avg_handle_minutes = serializers.FloatField(min_value=0)
    csat_responses = serializers.IntegerField(min_value=0, required=False)
    csat_positive = serializers.IntegerField(min_value=0, required=False)
    solution = serializers.CharField(required=False, allow_blank=True, help_text="Key of the solution that served them")
    arm = serializers.ChoiceField(choices=["all", "treatment", "control"], required=False)
    source = serializers.CharField(max_length=64, required=False)  # type: ignore[assignment]


class VolumeIngestResultSerializer(serializers.Serializer[Any]):
    rows = serializers.IntegerField()
    contact_reasons = serializers.ListField(child=serializers.CharField())


class GapSerializer(serializers.Serializer[Any]):
    rank = serializers.IntegerField()
    contact_reason = serializers.CharField()
    human_hours_per_week = serializers.FloatField()
    conversations_per_week = serializers.FloatField()
    handoffs_per_week = serializers.FloatField()
    avg_handle_minutes = serializers.FloatField()
    coverage = serializers.FloatField()
    containment = serializers.FloatField()
    csat = serializers.FloatField(allow_null=True)
    trend = serializers.ListField(child=serializers.FloatField(), help_text="Human hours per week, oldest first")
    trend_change = serializers.FloatField(allow_null=True)
    markets = serializers.ListField(child=serializers.CharField())


class GapAnalysisSerializer(serializers.Serializer[Any]):
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    weeks = serializers.ListField(child=serializers.DateTimeField())
    market = serializers.CharField(allow_null=True)
    audience = serializers.CharField(allow_null=True)
    total_human_hours_per_week = serializers.FloatField()
    gaps = GapSerializer(many=True)


class GapQuerySerializer(serializers.Serializer[Any]):
    market = serializers.CharField(max_length=16, required=False, allow_blank=True)
    audience = serializers.ChoiceField(choices=Audience.choices, required=False, allow_blank=True)


def score_dict(score: Score) -> dict[str, Any]:
    return {
        "value": round(score.value, 4),
        "formula": score.formula,
        "reach_conversations_per_week": round(score.reach, 1),
        "impact_hours_per_conversation": round(score.impact, 5),
        "avg_handle_minutes": round(score.avg_handle_minutes, 2),
        "confidence": score.confidence,
        "effort_weeks": score.effort,
        "expected_hours_saved_per_week": round(score.expected_hours_saved_per_week, 2),
        "weights": vars(score.weights),
    }


class OpportunitySerializer(serializers.ModelSerializer[Opportunity]):
    owner = serializers.CharField(source="owner.get_username", read_only=True)
    releases = serializers.PrimaryKeyRelatedField(many=True, read_only=True)  # type: ignore[var-annotated]
    # Blank means every audience: a plain string, so the schema allows "" beside the audiences.
    audience = serializers.CharField(read_only=True, help_text="buyers, sellers, creators, or blank for all")
    score = serializers.SerializerMethodField()

    class Meta:
        model = Opportunity
        fields = [
            "id",
            "title",
            "status",
            "contact_reasons",
            "hypothesis",
            "expected_containment_lift",
            "effort_weeks",
            "confidence",
            "markets",
            "audience",
            "solution",
            "releases",
            "owner",
            "score",
            "predicted_weekly_conversations",
            "predicted_hours_saved_per_week",
            "live_since",
            "realized_containment_lift",
            "realized_hours_saved_per_week",
            "drop_reason",
            "created_at",
            "updated_at",
            "accepted_at",
            "delivered_at",
            "measured_at",
        ]
        read_only_fields = fields

    def get_score(self, obj: Opportunity) -> dict[str, Any] | None:
        scores: dict[int, Score] = self.context.get("scores", {})
        score = scores.get(obj.pk)
        return score_dict(score) if score is not None else None


class OpportunityInputSerializer(serializers.Serializer[Any]):
    title = serializers.CharField(max_length=200)
    contact_reasons = serializers.ListField(child=serializers.SlugField(max_length=80), min_length=1, max_length=50)
    hypothesis = serializers.CharField()
    expected_containment_lift = serializers.FloatField(min_value=0.001, max_value=1.0)
    effort_weeks = serializers.FloatField(min_value=0.1, max_value=520)
    confidence = serializers.FloatField(min_value=0.01, max_value=1.0)
    markets = serializers.ListField(child=serializers.CharField(max_length=16), required=False, max_length=50)
    audience = serializers.ChoiceField(choices=Audience.choices, required=False, allow_blank=True)
    solution = serializers.PrimaryKeyRelatedField(
        queryset=AutomationSolution.objects.all(), required=False, allow_null=True
    )
    releases = serializers.PrimaryKeyRelatedField(queryset=Release.objects.all(), many=True, required=False)


class TransitionInputSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    live_since = serializers.DateTimeField(
        required=False, help_text="deliver only: when it reached customers, if not at its release's launch"
    )


class CalibrationRowSerializer(serializers.Serializer[Any]):
    opportunity_id = serializers.IntegerField()
    title = serializers.CharField()
    predicted_lift = serializers.FloatField()
    realized_lift = serializers.FloatField()
    predicted_hours = serializers.FloatField(allow_null=True)
    realized_hours = serializers.FloatField(allow_null=True)
    ratio = serializers.FloatField(allow_null=True)


class CalibrationSerializer(serializers.Serializer[Any]):
    summary = serializers.CharField()
    factor = serializers.FloatField(allow_null=True)
    rows = CalibrationRowSerializer(many=True)
