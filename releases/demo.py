"""Walking a release through its lifecycle with the real services, as its users would.

Used by ``manage.py seed_demo`` and by the test suite, so both always follow the current rules: every
governance or monitoring guard that lands must be satisfied here the way a person would satisfy it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import services
from .choices import ReleaseStatus

if TYPE_CHECKING:
    from core.actors import Actor

    from .models import Release

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
    from governance import demo as governance_demo

    program_manager = program_managers[0]
    people = [*program_managers, *reviewers, *([oncall] if oncall is not None else [])]
    while release.status != to:
        if release.status not in FORWARD_PATH or FORWARD_PATH.index(release.status) > FORWARD_PATH.index(to):
            raise ValueError(f"cannot advance a {release.status} release to {to}")
        if release.status == ReleaseStatus.DRAFT:
            release = services.release_submit(release=release, actor=release.author)
        elif release.status == ReleaseStatus.IN_REVIEW:
            # Reviewers sign the review checklist and approvers record approvals until the policy is met;
            # whichever completes last moves the release to approved.
            release = governance_demo.complete_review(release=release, people=people)
            if release.status != ReleaseStatus.APPROVED:
                raise ValueError(f"{release} is still in review: not enough eligible approvers among {people}")
        elif release.status == ReleaseStatus.APPROVED:
            governance_demo.sign_open_checklists(release=release, people=people)
            release = services.release_start_rollout(release=release, actor=program_manager)
        elif release.status == ReleaseStatus.ROLLING_OUT:
            stage = release.current_stage
            if to == ReleaseStatus.ROLLING_OUT or (
                stop_after_stage is not None and stage is not None and stage.position >= stop_after_stage
            ):
                break
            governance_demo.sign_open_checklists(release=release, people=people)
            release = services.release_promote(
                release=release, actor=program_manager, override=True, reason="Manual promotion: hold time waived"
            )
        elif release.status == ReleaseStatus.LAUNCHED:
            governance_demo.sign_open_checklists(release=release, people=people)
            release = services.release_begin_verification(release=release, actor=program_manager)
        elif release.status == ReleaseStatus.VERIFYING:
            governance_demo.sign_open_checklists(release=release, people=people)
            release = services.release_complete_verification(release=release, actor=program_manager)
    return release
