"""Checklists of a release's gates: instantiated from the active template, signed, marked N/A, frozen when the
gate passes, superseded, and the retro-review an emergency owes."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

from django.core.mail import mail_admins
from django.db import transaction
from django.utils import timezone

from core.audit import audit_record
from core.errors import (
    DomainPermissionDenied,
    DomainValidationError,
    GuardFailed,
    SeparationOfDuties,
)
from core.service_support import record_actor, save_audited, validate_model
from releases.models import Release

from ..models import (
    Checklist,
    ChecklistGate,
    ChecklistItem,
    ChecklistItemState,
    ChecklistStatus,
    ChecklistTemplate,
)
from ..selectors import (
    checklist_current,
    checklist_is_complete,
    checklist_pending_items,
)

if TYPE_CHECKING:
    from core.actors import Actor as User

from ..selectors import is_author_or_editor
from ._common import lock_release, user_in_group
from .approvals import approve_if_ready

logger = logging.getLogger(__name__)

RETRO_REVIEW_DUE = timedelta(hours=72)


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
    save_audited(
        checklist,
        actor=actor,
        action="checklist.frozen",
        release_id=release.pk,
        data={"gate": gate},
        reason="Gate passed",
        update_fields=["status", "frozen_at"],
        validate=False,
    )


def checklist_supersede(*, release: Release, gate: str, actor: User | None, reason: str) -> None:
    """The release went back before the gate (changes requested): the next pass starts a fresh checklist, since
    the content its sign-offs were given for is about to change."""
    checklist = Checklist.objects.current().filter(release_id=release.pk, gate=gate).first()
    if checklist is None or checklist.status == ChecklistStatus.PASSED:
        return
    checklist.status = ChecklistStatus.SUPERSEDED
    checklist.superseded_reason = reason
    save_audited(
        checklist,
        actor=actor,
        action="checklist.superseded",
        release_id=release.pk,
        reason=reason,
        data={"gate": gate},
        update_fields=["status", "superseded_reason"],
        validate=False,
    )


def _lock_item_for_sign_off(item: ChecklistItem, actor: User) -> tuple[ChecklistItem, Release]:
    release_id = ChecklistItem.objects.filter(pk=item.pk).values_list("checklist__release_id", flat=True).get()
    release = lock_release(release_id)
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
        raise SeparationOfDuties(
            "Whoever wrote content of a release (its author or any editor) never signs its checklist items."
        )
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
    save_audited(
        locked,
        actor=actor,
        action="checklist_item.signed",
        release_id=release.pk,
        reason=locked.note,
        data={"checklist": locked.checklist_id, "gate": locked.checklist.gate, "evidence_url": evidence_url},
        validate=False,
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
    save_audited(
        locked,
        actor=actor,
        action="checklist_item.not_applicable",
        release_id=release.pk,
        reason=justification,
        data={"checklist": locked.checklist_id, "gate": locked.checklist.gate},
        validate=False,
    )
    _after_item_resolved(checklist=locked.checklist, release=release, actor=actor, now=now)
    return locked


def _after_item_resolved(*, checklist: Checklist, release: Release, actor: User, now: datetime) -> None:
    if ChecklistItem.objects.filter(checklist=checklist, state=ChecklistItemState.PENDING).exists():
        return
    checklist.status = ChecklistStatus.COMPLETE
    checklist.completed_at = now
    save_audited(
        checklist,
        actor=actor,
        action="checklist.completed",
        release_id=release.pk,
        data={"gate": checklist.gate},
        reason="All items resolved",
        update_fields=["status", "completed_at"],
        validate=False,
    )
    if checklist.gate == ChecklistGate.REVIEW:
        approve_if_ready(release=release, actor=actor)
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


def retro_review_owe(*, release: Release, actor: User | None) -> Checklist | None:
    """An emergency path was used: the retro-review checklist is owed within 72 hours (once per release)."""
    return checklist_instantiate(
        release=release,
        gate=ChecklistGate.RETRO_REVIEW,
        actor=actor,
        due_at=timezone.now() + RETRO_REVIEW_DUE,
    )
