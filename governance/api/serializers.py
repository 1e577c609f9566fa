from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from rest_framework import serializers

from core.api.serializers import StrictInputMixin
from governance.models import (
    Approval,
    ApprovalDecision,
    ApprovalPolicy,
    ApprovalRequirement,
    Checklist,
    ChecklistItem,
    ChecklistTemplate,
    ChecklistTemplateItem,
    FreezeWindow,
)
from governance.services import (
    APPROVAL_POLICY_EDITABLE_FIELDS,
    APPROVAL_POLICY_READ_ONLY_FIELDS,
    RequirementSpec,
    TemplateItemSpec,
)

GroupField = serializers.SlugRelatedField


def _group_field(**kwargs: Any) -> serializers.SlugRelatedField[Group]:
    return serializers.SlugRelatedField(slug_field="name", queryset=Group.objects.all(), **kwargs)


class ApprovalRequirementSerializer(StrictInputMixin, serializers.ModelSerializer[ApprovalRequirement]):
    group = _group_field()

    class Meta:
        model = ApprovalRequirement
        fields = ["group", "minimum_count"]


class ApprovalPolicySerializer(StrictInputMixin, serializers.ModelSerializer[ApprovalPolicy]):
    requirements = ApprovalRequirementSerializer(many=True)

    class Meta:
        model = ApprovalPolicy
        fields = ["id", *APPROVAL_POLICY_EDITABLE_FIELDS, "requirements", "created_at", "updated_at"]
        read_only_fields = list(APPROVAL_POLICY_READ_ONLY_FIELDS)
        extra_kwargs = {"risk_level": {"required": True}}
        # The partial unique constraints are checked by the service's full_clean, with a readable message.
        validators: list[Any] = []

    def validate_requirements(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # A PATCH makes nested fields optional; a requirement still needs both of its parts.
        for index, row in enumerate(rows):
            missing = [name for name in ("group", "minimum_count") if name not in row]
            if missing:
                raise serializers.ValidationError(f"Requirement {index + 1} needs {' and '.join(missing)}.")
        return rows

    def requirement_specs(self) -> list[RequirementSpec] | None:
        rows = self.validated_data.get("requirements")
        if rows is None:
            return None
        return [RequirementSpec(group=row["group"].name, minimum_count=row["minimum_count"]) for row in rows]

    def service_fields(self) -> dict[str, Any]:
        return {k: v for k, v in self.validated_data.items() if k != "requirements"}


class ApprovalSerializer(serializers.ModelSerializer[Approval]):
    approver: serializers.StringRelatedField[Any] = serializers.StringRelatedField()
    group = serializers.CharField(source="group.name")
    is_expired = serializers.SerializerMethodField()

    class Meta:
        model = Approval
        fields = [
            "id",
            "release",
            "approver",
            "group",
            "policy",
            "decision",
            "comment",
            "content_hash",
            "created_at",
            "expires_at",
            "is_expired",
            "dismissed_at",
            "dismiss_reason",
        ]
        read_only_fields = fields

    def get_is_expired(self, approval: Approval) -> bool:
        return approval.is_expired()


class ApprovalInputSerializer(serializers.Serializer[Any]):
    """A decision on a release, bound to the content hash the approver saw."""

    group = serializers.CharField(max_length=150, help_text="The policy group this decision counts for.")
    content_hash = serializers.CharField(max_length=64)
    comment = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class DecisionInputSerializer(ApprovalInputSerializer):
    release = serializers.IntegerField()
    decision = serializers.ChoiceField(choices=ApprovalDecision.choices, default=ApprovalDecision.APPROVE)


class ChecklistTemplateItemSerializer(StrictInputMixin, serializers.ModelSerializer[ChecklistTemplateItem]):
    signer_group = _group_field()

    class Meta:
        model = ChecklistTemplateItem
        fields = ["id", "position", "question", "guidance", "required", "evidence_required", "signer_group"]
        read_only_fields = ["id", "position"]


class ChecklistTemplateSerializer(StrictInputMixin, serializers.ModelSerializer[ChecklistTemplate]):
    items = ChecklistTemplateItemSerializer(many=True)

    class Meta:
        model = ChecklistTemplate
        fields = [
            "id",
            "gate",
            "risk_level",
            "version",
            "name",
            "description",
            "status",
            "created_by",
            "created_at",
            "activated_at",
            "items",
        ]
        read_only_fields = ["id", "version", "status", "created_by", "created_at", "activated_at"]

    def item_specs(self) -> list[TemplateItemSpec] | None:
        rows = self.validated_data.get("items")
        if rows is None:
            return None
        return [
            TemplateItemSpec(
                question=row["question"],
                signer_group=row["signer_group"].name,
                guidance=row.get("guidance", ""),
                required=row.get("required", True),
                evidence_required=row.get("evidence_required", False),
            )
            for row in rows
        ]


class ChecklistItemSerializer(serializers.ModelSerializer[ChecklistItem]):
    signer_group = serializers.CharField(source="signer_group.name", read_only=True)
    signed_by: serializers.StringRelatedField[Any] = serializers.StringRelatedField()

    class Meta:
        model = ChecklistItem
        fields = [
            "id",
            "checklist",
            "position",
            "question",
            "guidance",
            "required",
            "evidence_required",
            "signer_group",
            "state",
            "signed_by",
            "signed_at",
            "evidence_url",
            "note",
            "na_justification",
        ]
        read_only_fields = fields


class ChecklistSerializer(serializers.ModelSerializer[Checklist]):
    items = ChecklistItemSerializer(many=True, read_only=True)

    class Meta:
        model = Checklist
        fields = [
            "id",
            "release",
            "gate",
            "template",
            "template_version",
            "name",
            "description",
            "status",
            "created_at",
            "completed_at",
            "frozen_at",
            "due_at",
            "escalated_at",
            "superseded_reason",
            "items",
        ]
        read_only_fields = fields


class SignOffInputSerializer(serializers.Serializer[Any]):
    evidence_url = serializers.CharField(required=False, allow_blank=True, default="", max_length=500)
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=5000)


class MarkNotApplicableInputSerializer(serializers.Serializer[Any]):
    justification = serializers.CharField(max_length=5000)


class FreezeWindowSerializer(StrictInputMixin, serializers.ModelSerializer[FreezeWindow]):
    markets = serializers.ListField(child=serializers.CharField(max_length=16), required=False, default=list)
    created_by: serializers.StringRelatedField[Any] = serializers.StringRelatedField()

    class Meta:
        model = FreezeWindow
        fields = ["id", "name", "starts_at", "ends_at", "markets", "reason", "created_by", "created_at", "cancelled_at"]
        read_only_fields = ["id", "created_by", "created_at", "cancelled_at"]


class ReasonInputSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=2000)


class PolicyStatusSerializer(serializers.Serializer[Any]):
    policy = serializers.IntegerField(allow_null=True)
    policy_name = serializers.CharField(allow_null=True)
    content_hash = serializers.CharField()
    satisfied = serializers.BooleanField()
    requirements = serializers.ListField(child=serializers.DictField())
    missing = serializers.ListField(child=serializers.DictField())
