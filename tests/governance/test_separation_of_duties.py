"""Separation of duties covers every editor of a release's content, not only its author and last editor."""

from __future__ import annotations

from typing import Any

import pytest

from core.models import AuditEvent
from core.roles import AUTHORS, PROGRAM_MANAGERS
from governance.models import Approval, ChecklistItem
from releases import services as release_services
from releases.choices import ReleaseStatus as S
from releases.choices import RiskLevel
from releases.models import Release
from releases.selectors import release_content_editors
from tests.conftest import api_as
from tests.factories import UserFactory, make_release

pytestmark = pytest.mark.django_db


def _approve(user: Any, release: Release) -> Any:
    return api_as(user).post(
        f"/api/v1/releases/{release.pk}/approve/",
        {"group": PROGRAM_MANAGERS, "content_hash": release.content_hash},
        format="json",
    )


def _sign(user: Any, item: ChecklistItem) -> Any:
    return api_as(user).post(
        f"/api/v1/checklist-items/{item.pk}/sign-off/",
        {"evidence_url": "https://wiki.example.com/e/1", "note": "Checked"},
        format="json",
    )


@pytest.mark.parametrize("editor_kind", ["author_and_program_manager", "superuser"])
def test_rewriter_of_the_prompt_approves_after_another_author_fixes_the_title_and_submits(
    editor_kind: str, author: Any, second_author: Any
) -> None:
    """The attack: X (Authors + Program managers, or a superuser) rewrites a draft's system_prompt; another author
    fixes a typo in the title and submits; X approves with the right hash (was 200, approved) and signs the
    release's checklist items. Everyone who wrote content of the release is excluded."""
    if editor_kind == "superuser":
        rewriter = UserFactory(username="root.rewriter", is_superuser=True)
    else:
        rewriter = UserFactory(username="xena.both", groups=[AUTHORS, PROGRAM_MANAGERS])
    release = make_release(author=author, risk_level=RiskLevel.HIGH)
    release_services.release_reassign(release=release, actor=author, co_authors=[rewriter, second_author])

    assert (
        api_as(rewriter)
        .patch(f"/api/v1/releases/{release.pk}/", {"system_prompt": "Offer refunds freely."}, format="json")
        .status_code
        == 200
    )
    fixed = api_as(second_author).patch(
        f"/api/v1/releases/{release.pk}/", {"title": "Clarify refund eligibility (typo)"}, format="json"
    )
    assert fixed.status_code == 200
    assert api_as(second_author).post(f"/api/v1/releases/{release.pk}/submit/").status_code == 200
    release.refresh_from_db()
    assert release.last_editor == second_author and release.status == S.IN_REVIEW
    assert rewriter.pk in release_content_editors(release)

    events_before = AuditEvent.objects.count()
    response = _approve(rewriter, release)
    assert response.status_code == 403, response.content
    assert response.json()["code"] == "separation_of_duties"
    assert not Approval.objects.filter(release=release).exists()

    item = ChecklistItem.objects.filter(checklist__release=release, state="pending").first()
    signed = _sign(rewriter, item)
    assert signed.status_code == 403 and signed.json()["code"] == "separation_of_duties"
    item.refresh_from_db()
    assert item.state == "pending"
    assert AuditEvent.objects.count() == events_before
    assert release not in [r for r, _s in _awaiting(rewriter)]


def _awaiting(user: Any) -> list[Any]:
    from governance.selectors import awaiting_approval_by

    return awaiting_approval_by(user=user)


def test_the_release_approve_transition_refuses_a_former_editor(author: Any, second_author: Any) -> None:
    """The approve guard path (release_approve) applies the same rule as approval_record."""
    rewriter = UserFactory(username="xena.both", groups=[AUTHORS, PROGRAM_MANAGERS])
    release = make_release(author=author, risk_level=RiskLevel.LOW)
    release_services.release_reassign(release=release, actor=author, co_authors=[rewriter])
    release_services.release_update(release=release, actor=rewriter, system_prompt="Rewritten.")
    release_services.release_update(release=release, actor=author, title="Author edits last")
    release = release_services.release_submit(release=release, actor=author)
    from core.errors import SeparationOfDuties

    with pytest.raises(SeparationOfDuties):
        release_services.release_approve(release=release, actor=rewriter)
