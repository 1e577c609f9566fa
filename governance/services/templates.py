"""Versioned SOP checklist templates: drafts edited, new versions copied, one active version per gate and risk
level."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from core.audit import audit_record
from core.errors import (
    DomainValidationError,
    GuardFailed,
)
from core.service_support import record_actor, require_permission, save_audited, validate_model

from ..models import (
    ChecklistTemplate,
    ChecklistTemplateItem,
    TemplateStatus,
)

if TYPE_CHECKING:
    from core.actors import Actor as User

from ._common import SIGNER_GROUPS

# --- Checklist templates ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateItemSpec:
    question: str
    signer_group: str
    guidance: str = ""
    required: bool = True
    evidence_required: bool = False


def _write_template_items(template: ChecklistTemplate, items: Sequence[TemplateItemSpec], actor: User | None) -> None:
    problems = []
    if not items:
        problems.append("A checklist needs at least one item.")
    groups = {group.name: group for group in Group.objects.filter(name__in=SIGNER_GROUPS)}
    for index, spec in enumerate(items, start=1):
        if spec.signer_group not in groups:
            problems.append(f"Item {index}: the signer group must be one of {', '.join(SIGNER_GROUPS)}.")
        if not spec.question.strip():
            problems.append(f"Item {index}: a question is required.")
    if problems:
        raise DomainValidationError({"items": problems})
    for old in template.items.all():
        record_actor(old, actor, "Draft items replaced")
        old.delete()
    for position, spec in enumerate(items, start=1):
        item = ChecklistTemplateItem(
            template=template,
            position=position,
            question=spec.question.strip(),
            guidance=spec.guidance.strip(),
            required=spec.required,
            evidence_required=spec.evidence_required,
            signer_group=groups[spec.signer_group],
        )
        validate_model(item, exclude=["template"])
        record_actor(item, actor, "Template item")
        item.save()


@transaction.atomic
def checklist_template_create(
    *,
    actor: User,
    gate: str,
    risk_level: str,
    name: str,
    description: str = "",
    items: Sequence[TemplateItemSpec],
) -> ChecklistTemplate:
    """A new draft version of the gate's checklist for the risk level (activate it to use it)."""
    require_permission(actor, "governance.add_checklisttemplate", "create checklist templates")
    last = ChecklistTemplate.objects.filter(gate=gate, risk_level=risk_level).order_by("-version").first()
    template = ChecklistTemplate(
        gate=gate,
        risk_level=risk_level,
        version=(last.version if last else 0) + 1,
        name=name,
        description=description,
        status=TemplateStatus.DRAFT,
        created_by=actor,
    )
    validate_model(template)
    record_actor(template, actor, "Draft created")
    template.save()
    _write_template_items(template, items, actor)
    audit_record(
        actor=actor,
        action="checklist_template.created",
        obj=template,
        data={"gate": gate, "risk_level": risk_level, "version": template.version, "items": len(items)},
    )
    return template


@transaction.atomic
def checklist_template_update(
    *,
    template: ChecklistTemplate,
    actor: User,
    name: str | None = None,
    description: str | None = None,
    items: Sequence[TemplateItemSpec] | None = None,
) -> ChecklistTemplate:
    """Edit a draft. Active and retired versions are immutable: make a new version instead."""
    require_permission(actor, "governance.change_checklisttemplate", "edit checklist templates")
    template = ChecklistTemplate.objects.select_for_update().get(pk=template.pk)
    if not template.is_editable:
        raise GuardFailed(
            f"Version {template.version} is {template.get_status_display().lower()} and cannot change; create a "
            "new version, edit it and activate it.",
            code="template_immutable",
        )
    if name is not None:
        template.name = name
    if description is not None:
        template.description = description
    validate_model(template)
    record_actor(template, actor, "Draft edited")
    template.save()
    if items is not None:
        _write_template_items(template, items, actor)
    audit_record(actor=actor, action="checklist_template.updated", obj=template, data={"version": template.version})
    return template


@transaction.atomic
def checklist_template_new_version(*, template: ChecklistTemplate, actor: User) -> ChecklistTemplate:
    """A draft copy of ``template`` as the next version of its gate and risk level."""
    items = [
        TemplateItemSpec(
            question=item.question,
            signer_group=item.signer_group.name,
            guidance=item.guidance,
            required=item.required,
            evidence_required=item.evidence_required,
        )
        for item in template.items.select_related("signer_group").order_by("position")
    ]
    return checklist_template_create(
        actor=actor,
        gate=template.gate,
        risk_level=template.risk_level,
        name=template.name,
        description=template.description,
        items=items,
    )


@transaction.atomic
def checklist_template_activate(*, template: ChecklistTemplate, actor: User) -> ChecklistTemplate:
    """Make a draft the active version; the previously active one retires. Checklists already instantiated keep
    their copy."""
    require_permission(actor, "governance.change_checklisttemplate", "activate checklist templates")
    template = ChecklistTemplate.objects.select_for_update().get(pk=template.pk)
    if template.status != TemplateStatus.DRAFT:
        raise GuardFailed(f"Only a draft can be activated; this version is {template.status}.", code="not_draft")
    if not template.items.exists():
        raise DomainValidationError({"items": ["A checklist needs at least one item."]})
    previous = (
        ChecklistTemplate.objects.select_for_update()
        .filter(gate=template.gate, risk_level=template.risk_level, status=TemplateStatus.ACTIVE)
        .first()
    )
    if previous is not None:
        previous.status = TemplateStatus.RETIRED
        # The retired version changes state too: its own event names it, not only the activated one's data.
        save_audited(
            previous,
            actor=actor,
            action="checklist_template.retired",
            reason=f"Replaced by version {template.version}",
            from_state=TemplateStatus.ACTIVE,
            to_state=TemplateStatus.RETIRED,
            data={"version": previous.version, "replaced_by": template.pk},
            update_fields=["status"],
            validate=False,
        )
    template.status = TemplateStatus.ACTIVE
    template.activated_at = timezone.now()
    save_audited(
        template,
        actor=actor,
        action="checklist_template.activated",
        data={"version": template.version, "retired": previous.pk if previous else None},
        reason="Activated",
        update_fields=["status", "activated_at"],
        validate=False,
    )
    return template
