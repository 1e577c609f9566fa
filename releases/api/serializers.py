from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from rest_framework import serializers

from core.api.serializers import BoundedDurationField, StrictInputMixin
from releases.choices import RiskLevel
from releases.models import AutomationSolution, Release, RolloutStage
from releases.services import (
    MIN_HOLD_MAX,
    RELEASE_CONTENT_FIELDS,
    RELEASE_DESCRIPTIVE_FIELDS,
    RELEASE_LIFECYCLE_FIELDS,
    VERIFICATION_WINDOW_MAX,
    VERIFICATION_WINDOW_MIN,
    StageSpec,
)


class SolutionSerializer(StrictInputMixin, serializers.ModelSerializer[AutomationSolution]):
    # The key identifies the solution in URLs and metrics: set once.
    create_only_fields = ("key",)

    class Meta:
        model = AutomationSolution
        fields = ["id", "key", "name", "description", "audience", "owner", "is_active", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class StageSerializer(StrictInputMixin, serializers.ModelSerializer[RolloutStage]):
    min_hold = BoundedDurationField(
        min_value=timedelta(0),
        max_value=MIN_HOLD_MAX,
        default=timedelta(hours=1),
        help_text="Minimum hold before promotion, e.g. '01:00:00' or '1 00:00:00' (0 to 90 days).",
    )
    markets = serializers.ListField(child=serializers.CharField(max_length=16), required=False, default=list)

    class Meta:
        model = RolloutStage
        fields = [
            "id",
            "position",
            "name",
            "traffic_percent",
            "markets",
            "min_hold",
            "min_sample_size",
            "started_at",
            "completed_at",
        ]
        read_only_fields = ["id", "position", "started_at", "completed_at"]

    def to_spec(self, data: dict[str, Any]) -> StageSpec:
        return StageSpec(
            name=data["name"],
            traffic_percent=data["traffic_percent"],
            markets=tuple(data.get("markets") or ()),
            min_hold=data.get("min_hold", timedelta(hours=1)),
            min_sample_size=data.get("min_sample_size", 0),
        )


class ReleaseSerializer(StrictInputMixin, serializers.ModelSerializer[Release]):
    stages = StageSerializer(many=True, required=False)
    verification_window = BoundedDurationField(
        min_value=VERIFICATION_WINDOW_MIN,
        max_value=VERIFICATION_WINDOW_MAX,
        required=False,
        help_text="How long post-launch verification lasts, e.g. '7 00:00:00' (5 minutes to 90 days).",
    )
    markets = serializers.ListField(child=serializers.CharField(max_length=16), required=False)
    tools = serializers.ListField(child=serializers.CharField(max_length=120), required=False)
    resolution_flow = serializers.JSONField(required=False)
    model_parameters = serializers.DictField(required=False)
    risk_level = serializers.ChoiceField(choices=RiskLevel.choices, required=False)
    solution = serializers.PrimaryKeyRelatedField(queryset=AutomationSolution.objects.all())
    author: serializers.StringRelatedField[Any] = serializers.StringRelatedField()
    co_authors = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.all(),
        many=True,
        required=False,
        help_text="Users who, besides the author, may edit and submit the draft. Set by the author or a program "
        "manager (an audited reassignment).",
    )
    last_editor: serializers.StringRelatedField[Any] = serializers.StringRelatedField()
    current_stage = StageSerializer(read_only=True, allow_null=True)
    available_transitions = serializers.SerializerMethodField()

    class Meta:
        model = Release
        fields = [
            "id",
            "solution",
            *RELEASE_DESCRIPTIVE_FIELDS,
            *RELEASE_CONTENT_FIELDS,
            "verification_window",
            "status",
            "stages",
            "current_stage",
            "stage_started_at",
            *RELEASE_LIFECYCLE_FIELDS,
            "co_authors",
            "available_transitions",
        ]
        read_only_fields = ["id", "status", "stage_started_at", *RELEASE_LIFECYCLE_FIELDS]

    def get_available_transitions(self, release: Release) -> list[str]:
        from releases.selectors import transitions_available_to

        request = self.context.get("request")
        if request is None:
            return []
        return [t.name for t in transitions_available_to(release=release, user=request.user)]

    def validate_resolution_flow(self, value: Any) -> Any:
        if not isinstance(value, dict | list):
            raise serializers.ValidationError("The resolution flow must be a JSON object or list.")
        return value

    def stage_specs(self) -> list[StageSpec] | None:
        stages = self.validated_data.get("stages")
        if stages is None:
            return None
        return [StageSerializer().to_spec(stage) for stage in stages]

    def service_fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.validated_data.items() if k not in {"stages", "solution", "co_authors"}}


class ReassignInputSerializer(serializers.Serializer[Any]):
    author = serializers.PrimaryKeyRelatedField(
        queryset=get_user_model().objects.all(), required=False, help_text="The new author (program managers only)."
    )
    co_authors = serializers.PrimaryKeyRelatedField(queryset=get_user_model().objects.all(), many=True, required=False)


class TransitionInputSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class OverridableTransitionInputSerializer(TransitionInputSerializer):
    override = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Override the guards that allow it (hold time, guardrails, emergency freeze); needs a reason.",
    )


class PromoteInputSerializer(OverridableTransitionInputSerializer):
    from_stage = serializers.IntegerField(
        min_value=1,
        help_text="Position of the stage you promote from (the release's current stage); 409 stale_stage if the "
        "release has moved since.",
    )


class TransitionErrorSerializer(serializers.Serializer[Any]):
    code = serializers.CharField()
    detail = serializers.CharField()


class ReleaseDiffQuerySerializer(serializers.Serializer[Any]):
    against = serializers.IntegerField(
        required=False,
        min_value=1,
        # An id the database column can hold: a larger one would be a database error, not a 400.
        max_value=2**31 - 1,
        help_text="Id of a release of the same solution to compare with; default: the previous release by version.",
    )


class ReleaseDiffSerializer(serializers.Serializer[Any]):
    release = serializers.IntegerField()
    against = serializers.IntegerField(allow_null=True)
    against_version = serializers.IntegerField(allow_null=True)
    empty = serializers.BooleanField()
    summary = serializers.CharField()
    texts = serializers.ListField(
        child=serializers.DictField(), help_text="Prompt and flow: lines added, removed, and a unified diff."
    )
    changes = serializers.ListField(
        child=serializers.DictField(),
        help_text="Model, knowledge base, parameters, tools, markets, stages: before, after, added, removed, changed.",
    )
