"""Approval policies and their requirements (group, minimum count)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import Group
from django.db import transaction

from core.audit import audit_record
from core.errors import (
    DomainValidationError,
)
from core.service_support import record_actor, reject_unknown_fields, require_permission, validate_model
from releases.models import AutomationSolution

from ..models import (
    ApprovalPolicy,
    ApprovalRequirement,
)

if TYPE_CHECKING:
    from core.actors import Actor as User


# --- Approval policies --------------------------------------------------------------------------------------


# The policy's own fields, declared once: the service accepts them, the admin's fieldset and the API serializer
# show them (requirements are written alongside, as RequirementSpec rows).
APPROVAL_POLICY_EDITABLE_FIELDS = (
    "name",
    "description",
    "risk_level",
    "is_emergency",
    "solution",
    "validity_days",
    "is_active",
)
# Written by the database / services only.
APPROVAL_POLICY_READ_ONLY_FIELDS = ("id", "created_at", "updated_at")


@dataclass(frozen=True)
class RequirementSpec:
    group: str
    minimum_count: int


def _write_requirements(policy: ApprovalPolicy, requirements: Sequence[RequirementSpec], actor: User) -> None:
    problems = []
    if not requirements:
        problems.append("A policy needs at least one requirement.")
    names = [spec.group for spec in requirements]
    if len(set(names)) != len(names):
        problems.append("Each group may appear once.")
    groups = {group.name: group for group in Group.objects.filter(name__in=names)}
    for spec in requirements:
        if spec.group not in groups:
            problems.append(f"Unknown group '{spec.group}'.")
        if spec.minimum_count < 1:
            problems.append(f"{spec.group}: the minimum count must be at least 1.")
    if problems:
        raise DomainValidationError({"requirements": problems})
    existing = {req.group.name: req for req in policy.requirements.select_related("group")}
    for spec in requirements:
        req = existing.pop(spec.group, None) or ApprovalRequirement(policy=policy, group=groups[spec.group])
        req.minimum_count = spec.minimum_count
        record_actor(req, actor, "Requirement set")
        req.save()
    for leftover in existing.values():
        record_actor(leftover, actor, "Requirement removed")
        leftover.delete()


def _policy_audit_data(policy: ApprovalPolicy) -> dict[str, Any]:
    return {
        "risk_level": policy.risk_level,
        "is_emergency": policy.is_emergency,
        "solution": policy.solution_id,
        "validity_days": policy.validity_days,
        "is_active": policy.is_active,
        "requirements": {req.group.name: req.minimum_count for req in policy.requirements.select_related("group")},
    }


@transaction.atomic
def approval_policy_create(
    *,
    actor: User,
    name: str,
    risk_level: str,
    requirements: Sequence[RequirementSpec],
    validity_days: int = 14,
    is_emergency: bool = False,
    solution: AutomationSolution | None = None,
    description: str = "",
    is_active: bool = True,
) -> ApprovalPolicy:
    require_permission(actor, "governance.add_approvalpolicy", "create approval policies")
    policy = ApprovalPolicy(
        name=name,
        risk_level=risk_level,
        validity_days=validity_days,
        is_emergency=is_emergency,
        solution=solution,
        description=description,
        is_active=is_active,
    )
    validate_model(policy)
    record_actor(policy, actor, "Created")
    policy.save()
    _write_requirements(policy, requirements, actor)
    audit_record(actor=actor, action="approval_policy.created", obj=policy, data=_policy_audit_data(policy))
    return policy


@transaction.atomic
def approval_policy_update(
    *,
    policy: ApprovalPolicy,
    actor: User,
    requirements: Sequence[RequirementSpec] | None = None,
    **fields: Any,
) -> ApprovalPolicy:
    """Edit a policy; it applies at once to releases still collecting approvals."""
    require_permission(actor, "governance.change_approvalpolicy", "edit approval policies")
    reject_unknown_fields(fields, APPROVAL_POLICY_EDITABLE_FIELDS)
    policy = ApprovalPolicy.objects.select_for_update().get(pk=policy.pk)
    for field_name, value in fields.items():
        setattr(policy, field_name, value)
    validate_model(policy)
    record_actor(policy, actor, "Edited")
    policy.save()
    if requirements is not None:
        _write_requirements(policy, requirements, actor)
    audit_record(actor=actor, action="approval_policy.updated", obj=policy, data=_policy_audit_data(policy))
    return policy
