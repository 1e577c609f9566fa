"""Named reads of governance: which policy applies, what is met or missing, what waits for whom. Nothing here
writes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from django.db.models import Q
from django.utils import timezone

from releases.choices import ReleaseStatus
from releases.models import Release
from releases.selectors import release_content_editors, release_ids_written_by

from .models import (
    LIVE_CHECKLIST_STATUSES,
    Approval,
    ApprovalDecision,
    ApprovalPolicy,
    Checklist,
    ChecklistGate,
    ChecklistItem,
    ChecklistItemState,
    ChecklistStatus,
    ChecklistTemplate,
    FreezeWindow,
)

if TYPE_CHECKING:
    from core.actors import Actor


def approval_policy_for_release(release: Release) -> ApprovalPolicy | None:
    """The active policy of the release: the solution's own before the default, emergency releases only by an
    emergency policy (of their risk level, or of any)."""
    candidates = ApprovalPolicy.objects.active().with_requirements().filter(is_emergency=release.is_emergency)
    candidates = candidates.filter(Q(solution_id=release.solution_id) | Q(solution__isnull=True))
    return _policy_matching(release, list(candidates))


def _policy_matching(release: Release, policies: list[ApprovalPolicy]) -> ApprovalPolicy | None:
    """The most specific of ``policies`` (active ones) for the release: own solution first, then an exact risk
    level. Pure, so a set-based caller can fetch the active policies once for many releases."""
    candidates = [
        policy
        for policy in policies
        if policy.is_emergency == release.is_emergency
        and policy.solution_id in (None, release.solution_id)
        and (
            policy.risk_level in (release.risk_level, "")
            if release.is_emergency
            else policy.risk_level == release.risk_level
        )
    ]
    ranked = sorted(candidates, key=lambda p: (p.solution_id is None, p.risk_level == ""))
    return ranked[0] if ranked else None


@dataclass
class RequirementStatus:
    group_id: int
    group: str
    minimum_count: int
    approvers: list[str] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.approvers)

    @property
    def met(self) -> bool:
        return self.count >= self.minimum_count

    @property
    def missing(self) -> int:
        return max(0, self.minimum_count - self.count)


@dataclass
class PolicyStatus:
    policy: ApprovalPolicy | None
    requirements: list[RequirementStatus]
    content_hash: str

    @property
    def satisfied(self) -> bool:
        return self.policy is not None and all(req.met for req in self.requirements)

    def describe_missing(self) -> str:
        if self.policy is None:
            return "no active approval policy matches this release"
        parts = [f"{req.missing} more from {req.group}" for req in self.requirements if not req.met]
        return ", ".join(parts) if parts else "nothing"

    def as_dict(self) -> dict[str, object]:
        return {
            "policy": self.policy.pk if self.policy else None,
            "policy_name": self.policy.name if self.policy else None,
            "content_hash": self.content_hash,
            "satisfied": self.satisfied,
            "requirements": [
                {
                    "group": req.group,
                    "minimum_count": req.minimum_count,
                    "count": req.count,
                    "approvers": req.approvers,
                    "met": req.met,
                }
                for req in self.requirements
            ],
            "missing": [{"group": req.group, "count": req.missing} for req in self.requirements if not req.met],
        }


def approval_policy_status(*, release: Release, now: datetime | None = None) -> PolicyStatus:
    """Which requirements of the release's policy are met by valid approvals: undismissed, unexpired and bound to
    the current content hash."""
    return approval_policy_statuses(releases=[release], now=now)[release.pk]


def approval_policy_statuses(*, releases: Sequence[Release], now: datetime | None = None) -> dict[int, PolicyStatus]:
    """``approval_policy_status`` of many releases in three queries whatever their number: the active policies
    with their requirements, and the valid approvals of all the releases; the rest is decided in Python."""
    now = now or timezone.now()
    if not releases:
        return {}
    hashes = {release.pk: release.content_hash for release in releases}
    policies = list(ApprovalPolicy.objects.active().with_requirements())
    valid = (
        Approval.objects.filter(release_id__in=[release.pk for release in releases])
        .live()
        .filter(decision=ApprovalDecision.APPROVE, expires_at__gt=now, content_hash__in=set(hashes.values()))
        .select_related("approver")
        .order_by("created_at", "pk")
    )
    approvers: dict[tuple[int, int], list[str]] = {}
    for approval in valid:
        # Bound to the content the release has now (the hash this caller saw on the release row).
        if approval.content_hash == hashes[approval.release_id]:
            approvers.setdefault((approval.release_id, approval.group_id), []).append(approval.approver.get_username())
    statuses = {}
    for release in releases:
        policy = _policy_matching(release, policies)
        requirements = (
            [
                RequirementStatus(
                    group_id=req.group_id,
                    group=req.group.name,
                    minimum_count=req.minimum_count,
                    approvers=approvers.get((release.pk, req.group_id), []),
                )
                for req in policy.requirements.all()
            ]
            if policy is not None
            else []
        )
        statuses[release.pk] = PolicyStatus(policy=policy, requirements=requirements, content_hash=release.content_hash)
    return statuses


def checklist_current(*, release: Release, gate: str) -> Checklist | None:
    return Checklist.objects.current().filter(release_id=release.pk, gate=gate).with_items().first()


def checklist_pending_items(checklist: Checklist) -> list[ChecklistItem]:
    """Items that keep the checklist from being complete: pending ones (an optional item is done when signed or
    marked N/A)."""
    return [item for item in checklist.items.all() if item.state == ChecklistItemState.PENDING]


def checklist_template_active(*, gate: str, risk_level: str) -> ChecklistTemplate | None:
    return ChecklistTemplate.objects.active().with_items().filter(gate=gate, risk_level=risk_level).first()


def freeze_windows_blocking(*, markets: list[str], now: datetime) -> list[FreezeWindow]:
    return [window for window in FreezeWindow.objects.covering(now) if window.applies_to(list(markets))]


def _group_ids_of(user: Actor) -> set[int]:
    return set(user.groups.values_list("id", flat=True))  # type: ignore[attr-defined]


def releases_awaiting_approval_by(*, user: Actor, now: datetime | None = None) -> list[Release]:
    """Releases in review where ``user`` could still count: a requirement of a group they belong to is not met,
    they have no live decision on it, and they neither authored nor last edited it."""
    return [release for release, _status in awaiting_approval_by(user=user, now=now)]


def awaiting_approval_by(*, user: Actor, now: datetime | None = None) -> list[tuple[Release, PolicyStatus]]:
    """``releases_awaiting_approval_by`` with each release's policy status, set-based: a handful of queries (the
    user's groups, the releases, the policies and the valid approvals) whatever the number of releases."""
    now = now or timezone.now()
    group_ids = _group_ids_of(user)
    superuser = bool(getattr(user, "is_superuser", False))
    candidates = list(
        Release.objects.with_related()
        .filter(status=ReleaseStatus.IN_REVIEW)
        # Anyone who wrote content of a release (not only its author or last editor) never counts for it.
        .exclude(Q(author_id=user.pk) | Q(pk__in=release_ids_written_by(user)))
        .exclude(pk__in=Approval.objects.live().filter(approver_id=user.pk).values("release_id"))
        .order_by("submitted_at", "pk")
    )
    statuses = approval_policy_statuses(releases=candidates, now=now)
    return [
        (release, statuses[release.pk])
        for release in candidates
        if any(not req.met and (superuser or req.group_id in group_ids) for req in statuses[release.pk].requirements)
    ]


def checklist_items_awaiting_sign_off_by(*, user: Actor) -> list[ChecklistItem]:
    """Pending items of live checklists that ``user`` may sign: their group's, on releases they did not write."""
    items = (
        ChecklistItem.objects.filter(state=ChecklistItemState.PENDING, checklist__status__in=LIVE_CHECKLIST_STATUSES)
        .exclude(Q(checklist__release__author_id=user.pk) | Q(checklist__release_id__in=release_ids_written_by(user)))
        .select_related("checklist__release__solution", "signer_group")
        .order_by("checklist__created_at", "position")
    )
    if not getattr(user, "is_superuser", False):
        items = items.filter(signer_group_id__in=_group_ids_of(user))
    return list(items)


def checklist_is_complete(checklist: Checklist | None) -> bool:
    return checklist is not None and checklist.status in (ChecklistStatus.COMPLETE, ChecklistStatus.PASSED)


def is_author_or_editor(*, release: Release, user: Actor) -> bool:
    """Whether ``user`` wrote any content of the release (author or any content editor, from history)."""
    return user.pk in release_content_editors(release)


# The checklist gate the release's next step waits for (the gate its current state must pass).
NEXT_GATE = {
    ReleaseStatus.IN_REVIEW: ChecklistGate.REVIEW,
    ReleaseStatus.APPROVED: ChecklistGate.ROLLOUT,
    ReleaseStatus.ROLLING_OUT: ChecklistGate.LAUNCH,
    ReleaseStatus.PAUSED: ChecklistGate.LAUNCH,
    ReleaseStatus.VERIFYING: ChecklistGate.VERIFICATION,
}


@dataclass(frozen=True)
class Blocker:
    """One thing the release's next gate still waits for: ``count`` checklist items or approvals of a group."""

    kind: str  # "item" or "approval"
    count: int
    group: str
    gate: str = ""

    def __str__(self) -> str:
        if self.kind == "approval":
            noun = "approval" if self.count == 1 else "approvals"
            return f"{self.count} {noun} ({self.group})"
        noun = "item" if self.count == 1 else "items"
        return f"{self.count} {self.gate}-checklist {noun} ({self.group})"


def checklist_progress(checklist: Checklist) -> tuple[int, int]:
    """(done, total) of a checklist: an item is done when signed or marked N/A. Reads the prefetched items."""
    items = list(checklist.items.all())
    return sum(1 for item in items if item.state != ChecklistItemState.PENDING), len(items)


@dataclass
class GovernanceOverview:
    """Everything governance shows about one release to one user (the admin panel; the API's policy-status is its
    ``policy_status``)."""

    release: Release
    policy_status: PolicyStatus
    approvals: list[Approval]
    checklists: list[Checklist]
    # Groups of the policy this user may count for; empty when they may not decide.
    approval_groups: list[str]
    my_decision: Approval | None
    is_writer: bool
    # Item ids this user may sign or mark N/A now.
    signable_item_ids: set[int]

    @property
    def gate_checklist(self) -> Checklist | None:
        """The live checklist of the gate the release waits at, if any (emergency releases skip the review one)."""
        gate = NEXT_GATE.get(ReleaseStatus(self.release.status))
        return next(
            (c for c in reversed(self.checklists) if c.gate == gate and c.status != ChecklistStatus.SUPERSEDED), None
        )

    @property
    def blockers(self) -> list[Blocker]:
        """What the next gate still waits for, by group: approvals the policy misses (while approvals decide the
        gate: in review, or approved with approvals that lapsed) and the gate checklist's pending items. Computed
        from what the overview already loaded."""
        blockers: list[Blocker] = []
        if self.release.status in (ReleaseStatus.IN_REVIEW, ReleaseStatus.APPROVED):
            blockers += [
                Blocker("approval", req.missing, req.group) for req in self.policy_status.requirements if not req.met
            ]
        checklist = self.gate_checklist
        if checklist is not None and checklist.is_signable:
            pending: dict[str, int] = {}
            for item in checklist.items.all():
                if item.state == ChecklistItemState.PENDING:
                    pending[item.signer_group.name] = pending.get(item.signer_group.name, 0) + 1
            items = [Blocker("item", n, group, checklist.get_gate_display().lower()) for group, n in pending.items()]
            blockers = items + blockers
        return blockers

    def blocked_by_text(self) -> str:
        return ", ".join(str(b) for b in self.blockers)

    @property
    def can_decide(self) -> bool:
        return (
            not self.is_writer
            and self.my_decision is None
            and bool(self.approval_groups)
            and self.release.status in (ReleaseStatus.IN_REVIEW, ReleaseStatus.APPROVED)
        )


def release_governance_overview(*, release: Release, user: Actor, now: datetime | None = None) -> GovernanceOverview:
    now = now or timezone.now()
    policy_status = approval_policy_status(release=release, now=now)
    checklists = list(Checklist.objects.filter(release_id=release.pk).with_items().order_by("created_at"))
    user_group_ids = _group_ids_of(user)
    is_superuser = bool(getattr(user, "is_superuser", False))
    is_writer = is_author_or_editor(release=release, user=user)
    approvals = list(Approval.objects.filter(release_id=release.pk).with_related().order_by("created_at"))
    return GovernanceOverview(
        release=release,
        policy_status=policy_status,
        approvals=approvals,
        checklists=checklists,
        approval_groups=[
            req.group for req in policy_status.requirements if is_superuser or req.group_id in user_group_ids
        ],
        # One person counts once: after a live decision the form would only be refused.
        my_decision=next(
            (
                a
                for a in approvals
                if a.approver_id == user.pk and a.dismissed_at is None and (a.expires_at is None or a.expires_at > now)
            ),
            None,
        ),
        is_writer=is_writer,
        signable_item_ids={
            item.pk
            for checklist in checklists
            if checklist.is_signable and not is_writer
            for item in checklist.items.all()
            if item.state == ChecklistItemState.PENDING and (is_superuser or item.signer_group_id in user_group_ids)
        },
    )
