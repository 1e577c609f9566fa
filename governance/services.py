"""Every write of governance: approvals, checklist instantiation and sign-off, templates, policies, freeze windows.

Separation of duties lives here (``has_perm`` is always True for a superuser): the author or last editor of a
release never counts as its approver and never signs its checklist items. Services that can move a release lock
its row first (``select_for_update``), so two approvals recorded at the same moment serialize and exactly one of
them makes the release ``approved``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import Group
from django.core.mail import mail_admins
from django.db import transaction
from django.utils import timezone

from core.audit import audit_record
from core.errors import (
    DomainPermissionDenied,
    DomainValidationError,
    GuardFailed,
    IllegalTransition,
    SeparationOfDuties,
    StaleContentHash,
)
from core.roles import ON_CALL, PROGRAM_MANAGERS, REVIEWERS
from core.service_support import record_actor, reject_unknown_fields, require_permission, validate_model
from releases import services as release_services
from releases.choices import ReleaseStatus
from releases.models import AutomationSolution, Release

from .models import (
    Approval,
    ApprovalDecision,
    ApprovalPolicy,
    ApprovalRequirement,
    Checklist,
    ChecklistGate,
    ChecklistItem,
    ChecklistItemState,
    ChecklistStatus,
    ChecklistTemplate,
    ChecklistTemplateItem,
    FreezeWindow,
    TemplateStatus,
)
from .selectors import (
    approval_policy_for_release,
    checklist_current,
    checklist_is_complete,
    checklist_pending_items,
)

if TYPE_CHECKING:
    from core.actors import Actor as User

logger = logging.getLogger(__name__)

RETRO_REVIEW_DUE = timedelta(hours=72)
# Groups a checklist item may name as signer: the roles that review, run and operate releases. They all hold
# ``releases.approve_release``, so whoever signs the last review item can complete the approval.
SIGNER_GROUPS = (REVIEWERS, PROGRAM_MANAGERS, ON_CALL)


def _lock_release(release_id: int) -> Release:
    return Release.objects.select_for_update(of=("self",)).select_related("solution").get(pk=release_id)


def is_author_or_editor(*, release: Release, user: User) -> bool:
    return user.pk in {release.author_id, release.last_editor_id}


def user_in_group(*, user: User, group: Group) -> bool:
    """Membership of a role group. A superuser may count for any group (separation of duties still applies)."""
    if getattr(user, "is_superuser", False):
        return True
    return user.groups.filter(pk=group.pk).exists()  # type: ignore[attr-defined]


def _resolve_group(group: Group | str | int, field: str = "group") -> Group:
    if isinstance(group, Group):
        return group
    lookup = {"pk": group} if isinstance(group, int) else {"name": group}
    found = Group.objects.filter(**lookup).first()
    if found is None:
        raise DomainValidationError({field: [f"Unknown group '{group}'."]})
    return found


# --- Approvals ----------------------------------------------------------------------------------------------


@transaction.atomic
def approval_record(
    *,
    release: Release,
    approver: User,
    group: Group | str | int,
    decision: str = ApprovalDecision.APPROVE,
    content_hash: str,
    comment: str = "",
) -> Approval:
    """Record one person's decision on a release, for one group of its policy, bound to the content they saw.

    ``approve`` completes the approval when the policy and the review checklist are then both satisfied;
    ``reject`` rejects the release; ``request_changes`` returns it to draft (which dismisses the approvals).
    A release already ``approved`` accepts fresh approvals, to renew expired ones before the rollout starts.
    """
    comment = (comment or "").strip()
    if decision not in ApprovalDecision.values:
        raise DomainValidationError({"decision": [f"Choose one of {', '.join(ApprovalDecision.values)}."]})
    if decision != ApprovalDecision.APPROVE and not comment:
        raise DomainValidationError({"comment": ["A comment is required to reject or request changes."]})
    group_obj = _resolve_group(group)

    locked = _lock_release(release.pk)
    now = timezone.now()
    allowed = locked.status == ReleaseStatus.IN_REVIEW or (
        locked.status == ReleaseStatus.APPROVED and decision == ApprovalDecision.APPROVE
    )
    if not allowed:
        raise IllegalTransition(
            f"Decisions are recorded only while a release is in review (this one is "
            f"{locked.get_status_display().lower()}).",
            extra={"status": locked.status},
        )
    if is_author_or_editor(release=locked, user=approver):
        raise SeparationOfDuties("The author or last editor of a release can never approve or review it.")
    policy = approval_policy_for_release(locked)
    if policy is None:
        raise GuardFailed("No active approval policy matches this release.", code="no_policy")
    required = {req.group_id: req for req in policy.requirements.all()}
    if group_obj.pk not in required:
        needed = ", ".join(req.group.name for req in required.values())
        raise DomainValidationError({"group": [f"The policy '{policy.name}' needs approvals from: {needed}."]})
    if not user_in_group(user=approver, group=group_obj):
        raise DomainPermissionDenied(f"You are not a member of '{group_obj.name}', so you cannot count for it.")
    if content_hash != locked.content_hash:
        raise StaleContentHash(
            "The release changed since you looked at it; review the current content and decide again.",
            extra={"current_content_hash": locked.content_hash},
        )

    # One person counts once. An expired decision of theirs no longer counts and makes room for a new one.
    for own in Approval.objects.live().filter(release=locked, approver_id=approver.pk).select_for_update():
        if own.is_expired(now):
            _approval_dismiss(own, actor=None, reason="Expired", now=now, audit_action="approval.expired")
        else:
            raise GuardFailed(
                f"You already recorded '{own.get_decision_display()}' on this release as {own.group.name}; "
                "one person counts once.",
                code="already_decided",
            )

    approval = Approval(
        release=locked,
        approver=approver,  # type: ignore[misc]
        group=group_obj,
        policy=policy,
        decision=decision,
        comment=comment,
        content_hash=content_hash,
        created_at=now,
        expires_at=now + timedelta(days=policy.validity_days),
    )
    validate_model(approval)
    record_actor(approval, approver, f"Decision: {decision}")
    approval.save()
    audit_record(
        actor=approver,
        action=f"approval.{decision}",
        obj=approval,
        release_id=locked.pk,
        reason=comment,
        data={
            "group": group_obj.name,
            "content_hash": content_hash,
            "policy": policy.name,
            "expires_at": approval.expires_at.isoformat(),
        },
    )

    if decision == ApprovalDecision.REJECT:
        release_services.release_reject(release=locked, actor=approver, reason=comment)
    elif decision == ApprovalDecision.REQUEST_CHANGES:
        release_services.release_request_changes(release=locked, actor=approver, reason=comment)
    else:
        _approve_if_ready(release=locked, actor=approver)
    return approval


# The code of the approve guard's refusal (``governance.lifecycle``): "not yet approvable", not an error.
APPROVAL_INCOMPLETE = "approval_incomplete"


def _approve_if_ready(*, release: Release, actor: User) -> None:
    """Try the approve transition; its guard is the one place that decides whether the release is approvable,
    and its refusal here only means "not yet"."""
    if release.status != ReleaseStatus.IN_REVIEW:
        return
    try:
        release_services.release_approve(
            release=release, actor=actor, reason="Approval policy satisfied and review checklist signed"
        )
    except GuardFailed as refusal:
        if refusal.code != APPROVAL_INCOMPLETE:
            raise


def _approval_dismiss(approval: Approval, *, actor: User | None, reason: str, now: datetime, audit_action: str) -> None:
    approval.dismissed_at = now
    approval.dismiss_reason = reason
    record_actor(approval, actor, reason)
    approval.save(update_fields=["dismissed_at", "dismiss_reason"])
    audit_record(
        actor=actor,
        action=audit_action,
        obj=approval,
        release_id=approval.release_id,
        reason=reason,
        data={"approver": approval.approver_id, "group": approval.group_id, "decision": approval.decision},
    )


def approvals_dismiss(*, release: Release, actor: User | None, reason: str) -> int:
    """Dismiss every live decision on the release (rows kept, with the reason). Runs inside the caller's
    transaction (a transition effect)."""
    now = timezone.now()
    count = 0
    for approval in Approval.objects.live().filter(release_id=release.pk).select_for_update():
        _approval_dismiss(approval, actor=actor, reason=reason, now=now, audit_action="approval.dismissed")
        count += 1
    return count


def approvals_expire(*, now: datetime | None = None) -> int:
    """Dismiss approvals past their validity on releases that have not started rolling out (the Celery beat
    task calls this; the ``start_rollout`` guard checks expiry itself, so a late run never lets one through)."""
    now = now or timezone.now()
    expired_ids = list(
        Approval.objects.live()
        .filter(expires_at__lte=now, release__status__in=[ReleaseStatus.IN_REVIEW, ReleaseStatus.APPROVED])
        .values_list("pk", flat=True)
    )
    count = 0
    for approval_id in expired_ids:
        with transaction.atomic():
            approval = Approval.objects.select_for_update().filter(pk=approval_id, dismissed_at__isnull=True).first()
            if approval is None:
                continue  # dismissed meanwhile
            reason = f"Expired after {approval.policy.validity_days} days"
            _approval_dismiss(approval, actor=None, reason=reason, now=now, audit_action="approval.expired")
            count += 1
    return count


# --- Checklists ---------------------------------------------------------------------------------------------


def checklist_instantiate(
    *, release: Release, gate: str, actor: User | None, due_at: datetime | None = None
) -> Checklist | None:
    """Copy the active template version of the gate and the release's risk level into a checklist of the release.

    Idempotent: the current checklist of the gate is returned if there is one. Returns None when no template is
    active for the gate (the gate then asks for nothing)."""
    existing = Checklist.objects.current().filter(release_id=release.pk, gate=gate).first()
    if existing is not None:
        return existing
    template = (
        ChecklistTemplate.objects.active()
        .filter(gate=gate, risk_level=release.risk_level)
        .prefetch_related("items")
        .first()
    )
    if template is None:
        logger.warning("No active %s checklist template for risk %s", gate, release.risk_level)
        return None
    checklist = Checklist(
        release=release,
        gate=gate,
        template=template,
        template_version=template.version,
        name=template.name,
        description=template.description,
        created_at=timezone.now(),
        due_at=due_at,
    )
    validate_model(checklist)
    record_actor(checklist, actor, f"Entered {gate} gate")
    checklist.save()
    for template_item in template.items.all():
        item = ChecklistItem(
            checklist=checklist,
            position=template_item.position,
            question=template_item.question,
            guidance=template_item.guidance,
            required=template_item.required,
            evidence_required=template_item.evidence_required,
            signer_group_id=template_item.signer_group_id,
        )
        record_actor(item, actor, "Copied from template")
        item.save()
    audit_record(
        actor=actor,
        action="checklist.instantiated",
        obj=checklist,
        release_id=release.pk,
        data={
            "gate": gate,
            "template": template.pk,
            "template_version": template.version,
            "items": template.items.count(),
            "due_at": due_at.isoformat() if due_at else None,
        },
    )
    return checklist


def checklist_problem(*, release: Release, gate: str) -> str | None:
    """Why the gate's checklist does not let the release through, or None."""
    checklist = checklist_current(release=release, gate=gate)
    label = ChecklistGate(gate).label.lower()
    if checklist is None:
        active = ChecklistTemplate.objects.active().filter(gate=gate, risk_level=release.risk_level).exists()
        return f"The {label} checklist of this release was never started." if active else None
    if checklist_is_complete(checklist):
        return None
    pending = checklist_pending_items(checklist)
    return f"The {label} checklist is not signed: {len(pending)} item(s) pending."


def checklist_gate_guard(*, release: Release, gate: str) -> None:
    problem = checklist_problem(release=release, gate=gate)
    if problem:
        checklist = checklist_current(release=release, gate=gate)
        raise GuardFailed(
            problem,
            code="checklist_incomplete",
            extra={"gate": gate, "checklist": checklist.pk if checklist else None},
        )


def checklist_freeze(*, release: Release, gate: str, actor: User | None) -> None:
    """The gate was passed: its checklist is frozen (no more sign-offs, N/A or edits)."""
    checklist = Checklist.objects.current().filter(release_id=release.pk, gate=gate).first()
    if checklist is None or checklist.status == ChecklistStatus.PASSED:
        return
    checklist.status = ChecklistStatus.PASSED
    checklist.frozen_at = timezone.now()
    record_actor(checklist, actor, "Gate passed")
    checklist.save(update_fields=["status", "frozen_at"])
    audit_record(actor=actor, action="checklist.frozen", obj=checklist, release_id=release.pk, data={"gate": gate})


def checklist_supersede(*, release: Release, gate: str, actor: User | None, reason: str) -> None:
    """The release went back before the gate (changes requested): the next pass starts a fresh checklist, since
    the content its sign-offs were given for is about to change."""
    checklist = Checklist.objects.current().filter(release_id=release.pk, gate=gate).first()
    if checklist is None or checklist.status == ChecklistStatus.PASSED:
        return
    checklist.status = ChecklistStatus.SUPERSEDED
    checklist.superseded_reason = reason
    record_actor(checklist, actor, reason)
    checklist.save(update_fields=["status", "superseded_reason"])
    audit_record(
        actor=actor,
        action="checklist.superseded",
        obj=checklist,
        release_id=release.pk,
        reason=reason,
        data={"gate": gate},
    )


def _lock_item_for_sign_off(item: ChecklistItem, actor: User) -> tuple[ChecklistItem, Release]:
    release_id = ChecklistItem.objects.filter(pk=item.pk).values_list("checklist__release_id", flat=True).get()
    release = _lock_release(release_id)
    locked = (
        ChecklistItem.objects.select_for_update(of=("self",))
        .select_related("checklist", "signer_group")
        .get(pk=item.pk)
    )
    if not locked.checklist.is_signable:
        raise GuardFailed(
            f"This checklist is {locked.checklist.get_status_display().lower()}; it cannot change any more.",
            code="checklist_frozen",
        )
    if locked.state != ChecklistItemState.PENDING:
        who = locked.signed_by.get_username() if locked.signed_by else "someone"
        raise GuardFailed(
            f"This item is already {locked.get_state_display()} (by {who}).", code="item_already_resolved"
        )
    if is_author_or_editor(release=release, user=actor):
        raise SeparationOfDuties("The author or last editor of a release never signs its checklist items.")
    if not user_in_group(user=actor, group=locked.signer_group):
        raise DomainPermissionDenied(f"Only members of '{locked.signer_group.name}' sign this item.")
    return locked, release


@transaction.atomic
def checklist_item_sign_off(
    *, item: ChecklistItem, actor: User, evidence_url: str = "", note: str = ""
) -> ChecklistItem:
    evidence_url = (evidence_url or "").strip()
    locked, release = _lock_item_for_sign_off(item, actor)
    if locked.evidence_required and not evidence_url:
        raise DomainValidationError({"evidence_url": ["This item needs a link to its evidence."]})
    now = timezone.now()
    locked.state = ChecklistItemState.SIGNED
    locked.signed_by = actor  # type: ignore[assignment]
    locked.signed_at = now
    locked.evidence_url = evidence_url
    locked.note = (note or "").strip()
    validate_model(locked)
    record_actor(locked, actor, "Signed off")
    locked.save()
    audit_record(
        actor=actor,
        action="checklist_item.signed",
        obj=locked,
        release_id=release.pk,
        reason=locked.note,
        data={"checklist": locked.checklist_id, "gate": locked.checklist.gate, "evidence_url": evidence_url},
    )
    _after_item_resolved(checklist=locked.checklist, release=release, actor=actor, now=now)
    return locked


@transaction.atomic
def checklist_item_mark_na(*, item: ChecklistItem, actor: User, justification: str) -> ChecklistItem:
    justification = (justification or "").strip()
    if not justification:
        raise DomainValidationError({"justification": ["Say why this item does not apply."]})
    locked, release = _lock_item_for_sign_off(item, actor)
    if locked.required:
        raise DomainValidationError({"detail": ["A required item cannot be marked N/A; it must be signed."]})
    now = timezone.now()
    locked.state = ChecklistItemState.NOT_APPLICABLE
    locked.signed_by = actor  # type: ignore[assignment]
    locked.signed_at = now
    locked.na_justification = justification
    validate_model(locked)
    record_actor(locked, actor, "Marked N/A")
    locked.save()
    audit_record(
        actor=actor,
        action="checklist_item.not_applicable",
        obj=locked,
        release_id=release.pk,
        reason=justification,
        data={"checklist": locked.checklist_id, "gate": locked.checklist.gate},
    )
    _after_item_resolved(checklist=locked.checklist, release=release, actor=actor, now=now)
    return locked


def _after_item_resolved(*, checklist: Checklist, release: Release, actor: User, now: datetime) -> None:
    if ChecklistItem.objects.filter(checklist=checklist, state=ChecklistItemState.PENDING).exists():
        return
    checklist.status = ChecklistStatus.COMPLETE
    checklist.completed_at = now
    record_actor(checklist, actor, "All items resolved")
    checklist.save(update_fields=["status", "completed_at"])
    audit_record(
        actor=actor, action="checklist.completed", obj=checklist, release_id=release.pk, data={"gate": checklist.gate}
    )
    if checklist.gate == ChecklistGate.REVIEW:
        _approve_if_ready(release=release, actor=actor)
    elif checklist.gate == ChecklistGate.RETRO_REVIEW:
        # No transition waits on a retro-review: completing it is passing it.
        checklist_freeze(release=release, gate=checklist.gate, actor=actor)


def retro_reviews_escalate(*, now: datetime | None = None) -> int:
    """Escalate every retro-review past its due time that is not complete yet, once: an audit event, a log line
    and a mail to the admins."""
    now = now or timezone.now()
    overdue_ids = list(
        Checklist.objects.filter(
            gate=ChecklistGate.RETRO_REVIEW,
            status=ChecklistStatus.OPEN,
            due_at__lt=now,
            escalated_at__isnull=True,
        ).values_list("pk", flat=True)
    )
    count = 0
    for checklist_id in overdue_ids:
        with transaction.atomic():
            # Compare-and-set: a concurrent run of the task escalates each checklist once.
            checklist = (
                Checklist.objects.select_for_update()
                .select_related("release__solution")
                .filter(pk=checklist_id, escalated_at__isnull=True, status=ChecklistStatus.OPEN)
                .first()
            )
            if checklist is None:
                continue
            checklist.escalated_at = now
            record_actor(checklist, None, "Retro-review overdue")
            checklist.save(update_fields=["escalated_at"])
            pending = ChecklistItem.objects.filter(checklist=checklist, state=ChecklistItemState.PENDING).count()
            assert checklist.due_at is not None
            overdue_by = now - checklist.due_at
            audit_record(
                actor=None,
                action="retro_review.overdue",
                obj=checklist,
                release_id=checklist.release_id,
                reason=f"Retro-review overdue by {overdue_by}",
                data={"due_at": checklist.due_at.isoformat(), "pending_items": pending},
            )
            release = checklist.release
            subject = f"Retro-review overdue: {release}"
            message = (
                f"The retro-review checklist of emergency release {release} was due {checklist.due_at:%Y-%m-%d %H:%M} "
                f"UTC and still has {pending} pending item(s)."
            )
            logger.warning("%s — %s", subject, message)
            transaction.on_commit(partial(mail_admins, subject, message, fail_silently=True))
            count += 1
    return count


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
        record_actor(previous, actor, f"Replaced by version {template.version}")
        previous.save(update_fields=["status"])
    template.status = TemplateStatus.ACTIVE
    template.activated_at = timezone.now()
    record_actor(template, actor, "Activated")
    template.save(update_fields=["status", "activated_at"])
    audit_record(
        actor=actor,
        action="checklist_template.activated",
        obj=template,
        data={"version": template.version, "retired": previous.pk if previous else None},
    )
    return template


# --- Approval policies --------------------------------------------------------------------------------------


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
    allowed = {"name", "description", "risk_level", "is_emergency", "solution", "validity_days", "is_active"}
    reject_unknown_fields(fields, allowed)
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


# --- Freeze windows -----------------------------------------------------------------------------------------


@transaction.atomic
def freeze_window_create(
    *,
    actor: User,
    name: str,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    markets: Sequence[str] = (),
) -> FreezeWindow:
    require_permission(actor, "governance.add_freezewindow", "create freeze windows")
    window = FreezeWindow(
        name=name, starts_at=starts_at, ends_at=ends_at, reason=reason, markets=list(markets), created_by=actor
    )
    _validate_window(window)
    record_actor(window, actor, "Created")
    window.save()
    audit_record(actor=actor, action="freeze_window.created", obj=window, reason=reason, data=_window_data(window))
    return window


@transaction.atomic
def freeze_window_update(*, window: FreezeWindow, actor: User, **fields: Any) -> FreezeWindow:
    require_permission(actor, "governance.change_freezewindow", "edit freeze windows")
    allowed = {"name", "starts_at", "ends_at", "reason", "markets"}
    reject_unknown_fields(fields, allowed)
    window = FreezeWindow.objects.select_for_update().get(pk=window.pk)
    if window.cancelled_at is not None:
        raise GuardFailed("This freeze window was cancelled.", code="freeze_window_cancelled")
    for field_name, value in fields.items():
        setattr(window, field_name, list(value) if field_name == "markets" else value)
    _validate_window(window)
    record_actor(window, actor, "Edited")
    window.save()
    audit_record(actor=actor, action="freeze_window.updated", obj=window, data=_window_data(window))
    return window


@transaction.atomic
def freeze_window_cancel(*, window: FreezeWindow, actor: User, reason: str) -> FreezeWindow:
    """Lift a freeze early; the row stays, with the time it was cancelled."""
    require_permission(actor, "governance.change_freezewindow", "cancel freeze windows")
    reason = (reason or "").strip()
    if not reason:
        raise DomainValidationError({"reason": ["Say why the freeze is lifted."]})
    window = FreezeWindow.objects.select_for_update().get(pk=window.pk)
    if window.cancelled_at is not None:
        raise GuardFailed("This freeze window was already cancelled.", code="freeze_window_cancelled")
    window.cancelled_at = timezone.now()
    record_actor(window, actor, reason)
    window.save(update_fields=["cancelled_at"])
    audit_record(actor=actor, action="freeze_window.cancelled", obj=window, reason=reason, data=_window_data(window))
    return window


def _validate_window(window: FreezeWindow) -> None:
    validate_model(window, exclude=["created_by"])
    if window.ends_at <= window.starts_at:
        raise DomainValidationError({"ends_at": ["The freeze must end after it starts."]})


def _window_data(window: FreezeWindow) -> dict[str, Any]:
    return {
        "name": window.name,
        "starts_at": window.starts_at.isoformat(),
        "ends_at": window.ends_at.isoformat(),
        "markets": window.markets,
    }


def freeze_override_check(*, release: Release, actor: User | None, reason: str) -> None:
    """Whether this actor may override freeze windows for this release (the freeze guard asks; reads only)."""
    if not release.is_emergency:
        raise GuardFailed(
            "Only an emergency release may override a freeze window.", code="freeze_override_not_emergency"
        )
    pm_group = Group.objects.filter(name=PROGRAM_MANAGERS).first()
    if actor is None or pm_group is None or not user_in_group(user=actor, group=pm_group):
        raise DomainPermissionDenied("Only a program manager may override a freeze window.")
    if not reason.strip():
        raise DomainValidationError({"reason": ["A reason is required to override a freeze window."]})


def freeze_override_record(
    *, release: Release, actor: User | None, window_ids: Sequence[int], transition: str, reason: str
) -> None:
    """Record an accepted override on each window's audit trail (a transition effect, in its transaction)."""
    for window in FreezeWindow.objects.filter(pk__in=window_ids).order_by("pk"):
        audit_record(
            actor=actor,
            action="freeze_window.overridden",
            obj=window,
            release_id=release.pk,
            reason=reason,
            data={"transition": transition, **_window_data(window)},
        )


def retro_review_owe(*, release: Release, actor: User | None) -> Checklist | None:
    """An emergency path was used: the retro-review checklist is owed within 72 hours (once per release)."""
    return checklist_instantiate(
        release=release,
        gate=ChecklistGate.RETRO_REVIEW,
        actor=actor,
        due_at=timezone.now() + RETRO_REVIEW_DUE,
    )
