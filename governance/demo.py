"""Satisfying governance the way people would, for ``releases.demo.advance_release``, ``seed_demo`` and tests:
members of the right groups sign the checklists and record approvals through the real services."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from releases.models import Release

from . import services
from .models import ApprovalDecision, ChecklistGate, ChecklistItemState
from .selectors import approval_policy_status, checklist_current

if TYPE_CHECKING:
    from core.actors import Actor

EVIDENCE_URL = "https://wiki.example.com/rollgate/evidence"


def _eligible(people: Sequence[Actor], release: Release, group_id: int) -> list[Actor]:
    return [
        person
        for person in people
        if not services.is_author_or_editor(release=release, user=person)
        and (getattr(person, "is_superuser", False) or person.groups.filter(pk=group_id).exists())  # type: ignore[attr-defined]
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
