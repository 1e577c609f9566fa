"""Walking a release through its lifecycle with the real services, as its users would: members of the right
groups sign the checklists and record approvals, program managers run the rollout.

Used by ``manage.py seed_demo`` and by the test suite, so both always follow the current rules: every guard that
lands must be satisfied here the way a person would satisfy it. It lives in governance because it drives
governance (approvals, checklists) on top of the release services."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.contrib.auth.models import Group

from releases import services as release_services
from releases.choices import ReleaseStatus
from releases.models import Release
from releases.selectors import release_content_editors

from . import services
from .models import ApprovalDecision, ChecklistGate, ChecklistItemState
from .selectors import approval_policy_status, checklist_current

if TYPE_CHECKING:
    from core.actors import Actor

EVIDENCE_URL = "https://wiki.example.com/rollgate/evidence"


def _eligible(people: Sequence[Actor], release: Release, group_id: int) -> list[Actor]:
    # Two reads per call, not two per person: a walk-through asks this for every checklist item.
    editors = release_content_editors(release)
    members = set(
        Group.objects.filter(pk=group_id, user__in=[person.pk for person in people]).values_list("user", flat=True)
    )
    return [
        person
        for person in people
        if person.pk not in editors and (getattr(person, "is_superuser", False) or person.pk in members)
    ]


def sign_checklist(*, release: Release, gate: str, people: Sequence[Actor]) -> None:
    """Sign every pending item of the release's checklist for ``gate`` by someone of ``people`` in its group."""
    checklist = checklist_current(release=release, gate=gate)
    if checklist is None:
        return
    for item in checklist.items.all():
        if item.state != ChecklistItemState.PENDING:
            continue
        signers = _eligible(people, release, item.signer_group_id)
        if not signers:
            raise ValueError(f"nobody of {item.signer_group.name} to sign '{item.question}'")
        services.checklist_item_sign_off(
            item=item,
            actor=signers[0],
            evidence_url=EVIDENCE_URL if item.evidence_required else "",
            note="Checked for the demo walk-through.",
        )


def sign_open_checklists(*, release: Release, people: Sequence[Actor]) -> None:
    """Sign whatever checklist the release has open, for every gate except the review (see complete_review)."""
    for gate in (ChecklistGate.ROLLOUT, ChecklistGate.LAUNCH, ChecklistGate.VERIFICATION, ChecklistGate.RETRO_REVIEW):
        sign_checklist(release=release, gate=gate, people=people)


def approve_per_policy(*, release: Release, people: Sequence[Actor]) -> Release:
    """Record approvals from ``people`` until every requirement of the policy is met (each person once)."""
    used: set[int] = set()
    release.refresh_from_db()
    status = approval_policy_status(release=release)
    for requirement in status.requirements:
        already = set(requirement.approvers)
        for person in _eligible(people, release, requirement.group_id):
            if len(already) >= requirement.minimum_count:
                break
            if person.pk in used or person.get_username() in already:
                continue
            services.approval_record(
                release=release,
                approver=person,
                group=requirement.group,
                decision=ApprovalDecision.APPROVE,
                content_hash=release.content_hash,
                comment="Reviewed for the demo walk-through.",
            )
            used.add(person.pk)
            already.add(person.get_username())
        release.refresh_from_db()
    return release


def complete_review(*, release: Release, people: Sequence[Actor]) -> Release:
    """Sign the review checklist and approve per policy: the release ends ``approved`` (by whichever comes last)."""
    sign_checklist(release=release, gate=ChecklistGate.REVIEW, people=people)
    release = approve_per_policy(release=release, people=people)
    release.refresh_from_db()
    return release


FORWARD_PATH = (
    ReleaseStatus.DRAFT,
    ReleaseStatus.IN_REVIEW,
    ReleaseStatus.APPROVED,
    ReleaseStatus.ROLLING_OUT,
    ReleaseStatus.LAUNCHED,
    ReleaseStatus.VERIFYING,
    ReleaseStatus.VERIFIED,
)


def advance_release(
    release: Release,
    to: str,
    *,
    program_managers: Sequence[Actor],
    reviewers: Sequence[Actor] = (),
    oncall: Actor | None = None,
    stop_after_stage: int | None = None,
) -> Release:
    """Drive ``release`` forward until it reaches status ``to``.

    ``stop_after_stage`` leaves a rolling-out release at that stage position instead of promoting further.
    The hold time is overridden with a reason (a program manager's manual promotion), as a demo cannot wait.
    """
    if to not in FORWARD_PATH:
        raise ValueError(f"{to} is not on the forward path")
    program_manager = program_managers[0]
    people = [*program_managers, *reviewers, *([oncall] if oncall is not None else [])]
    while release.status != to:
        if release.status not in FORWARD_PATH or FORWARD_PATH.index(release.status) > FORWARD_PATH.index(to):
            raise ValueError(f"cannot advance a {release.status} release to {to}")
        if release.status == ReleaseStatus.DRAFT:
            release = release_services.release_submit(release=release, actor=release.author)
        elif release.status == ReleaseStatus.IN_REVIEW:
            # Reviewers sign the review checklist and approvers record approvals until the policy is met;
            # whichever completes last moves the release to approved.
            release = complete_review(release=release, people=people)
            if release.status != ReleaseStatus.APPROVED:
                raise ValueError(f"{release} is still in review: not enough eligible approvers among {people}")
        elif release.status == ReleaseStatus.APPROVED:
            sign_open_checklists(release=release, people=people)
            release = release_services.release_start_rollout(release=release, actor=program_manager)
        elif release.status == ReleaseStatus.ROLLING_OUT:
            stage = release.current_stage
            if to == ReleaseStatus.ROLLING_OUT or (
                stop_after_stage is not None and stage is not None and stage.position >= stop_after_stage
            ):
                break
            sign_open_checklists(release=release, people=people)
            release = release_services.release_promote(
                release=release,
                actor=program_manager,
                override=True,
                reason="Manual promotion: hold time waived",
                from_stage=stage.position if stage is not None else None,
            )
        elif release.status == ReleaseStatus.LAUNCHED:
            sign_open_checklists(release=release, people=people)
            release = release_services.release_begin_verification(release=release, actor=program_manager)
        elif release.status == ReleaseStatus.VERIFYING:
            sign_open_checklists(release=release, people=people)
            release = release_services.release_complete_verification(release=release, actor=program_manager)
    return release
