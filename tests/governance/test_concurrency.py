"""Two reviewers approving at the same moment, from threads, on PostgreSQL."""

from __future__ import annotations

import pytest

from core.models import AuditEvent
from core.roles import PROGRAM_MANAGERS, REVIEWERS
from governance import services
from governance.demo import sign_checklist
from governance.models import Approval, ChecklistGate
from releases.choices import ReleaseStatus as S
from releases.choices import RiskLevel
from releases.models import Release
from tests.concurrency import raised, run_at_once
from tests.governance.helpers import submitted


@pytest.mark.django_db(transaction=True)
def test_concurrent_approvals_are_both_recorded_and_approve_once(
    author, program_manager, reviewer, second_reviewer, crew
):
    # Medium risk: Program managers ×1 + Reviewers ×1. The PM approved and the checklist is signed, so
    # whichever reviewer lands first completes the policy; the other is recorded on an approved release.
    release = submitted(author=author, risk_level=RiskLevel.MEDIUM)
    sign_checklist(release=release, gate=ChecklistGate.REVIEW, people=crew)
    services.approval_record(
        release=release, approver=program_manager, group=PROGRAM_MANAGERS, content_hash=release.content_hash
    )
    release.refresh_from_db()
    assert release.status == S.IN_REVIEW

    def approve(user):
        return services.approval_record(
            release=Release.objects.get(pk=release.pk),
            approver=user,
            group=REVIEWERS,
            content_hash=release.content_hash,
        )

    errors = raised(run_at_once(lambda: approve(reviewer), lambda: approve(second_reviewer)))
    assert errors == []
    release.refresh_from_db()
    assert release.status == S.APPROVED
    assert Approval.objects.filter(release=release, group__name=REVIEWERS, dismissed_at__isnull=True).count() == 2
    assert AuditEvent.objects.filter(release_id=release.pk, action="release.approve").count() == 1
    assert release.history.filter(status=S.APPROVED).count() == 1
