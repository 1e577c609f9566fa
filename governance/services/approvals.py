"""Approval decisions: recorded bound to the content hash, dismissed, expired; the last one that completes
the policy tries the approve transition."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from core.errors import (
    DomainPermissionDenied,
    DomainValidationError,
    GuardFailed,
    IllegalTransition,
    SeparationOfDuties,
    StaleContentHash,
)
from core.service_support import save_audited, validate_model
from releases import services as release_services
from releases.choices import ReleaseStatus
from releases.models import Release

from ..models import (
    Approval,
    ApprovalDecision,
)
from ..selectors import (
    approval_policy_for_release,
)

if TYPE_CHECKING:
    from core.actors import Actor as User

from ..selectors import is_author_or_editor
from ._common import lock_release, resolve_group, user_in_group

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
    group_obj = resolve_group(group)

    locked = lock_release(release.pk)
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
        raise SeparationOfDuties(
            "Whoever wrote content of a release (its author or any editor) can never approve or review it."
        )
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
    save_audited(
        approval,
        actor=approver,
        action=f"approval.{decision}",
        release_id=locked.pk,
        reason=comment,
        data={
            "group": group_obj.name,
            "content_hash": content_hash,
            "policy": policy.name,
            "expires_at": approval.expires_at.isoformat(),
        },
        validate=False,
    )

    if decision == ApprovalDecision.REJECT:
        release_services.release_reject(release=locked, actor=approver, reason=comment)
    elif decision == ApprovalDecision.REQUEST_CHANGES:
        release_services.release_request_changes(release=locked, actor=approver, reason=comment)
    else:
        approve_if_ready(release=locked, actor=approver)
    return approval


# The code of the approve guard's refusal (``governance.lifecycle``): "not yet approvable", not an error.
APPROVAL_INCOMPLETE = "approval_incomplete"


def approve_if_ready(*, release: Release, actor: User) -> None:
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
    save_audited(
        approval,
        actor=actor,
        action=audit_action,
        release_id=approval.release_id,
        reason=reason,
        data={"approver": approval.approver_id, "group": approval.group_id, "decision": approval.decision},
        update_fields=["dismissed_at", "dismiss_reason"],
        validate=False,
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
