from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import (
    DomainPermissionDenied,
    DomainValidationError,
    GuardFailed,
    IllegalTransition,
    SeparationOfDuties,
    StaleContentHash,
)
from core.models import AuditEvent
from core.roles import ON_CALL, PROGRAM_MANAGERS, REVIEWERS
from governance import services
from governance.demo import approve_per_policy, sign_checklist
from governance.models import Approval, ApprovalPolicy, Checklist, ChecklistGate, ChecklistStatus
from governance.selectors import approval_policy_status, releases_awaiting_approval_by
from releases import services as release_services
from releases.choices import ReleaseStatus as S
from releases.choices import RiskLevel
from tests.factories import UserFactory, make_release
from tests.governance.helpers import approved, submitted

pytestmark = pytest.mark.django_db


def _approve(release, user, group, **kwargs):
    return services.approval_record(
        release=release,
        approver=user,
        group=group,
        content_hash=kwargs.pop("content_hash", release.content_hash),
        **kwargs,
    )


class TestSeededPolicies:
    @pytest.mark.parametrize(
        ("risk", "expected"),
        [
            (RiskLevel.LOW, {PROGRAM_MANAGERS: 1}),
            (RiskLevel.MEDIUM, {PROGRAM_MANAGERS: 1, REVIEWERS: 1}),
            (RiskLevel.HIGH, {PROGRAM_MANAGERS: 1, REVIEWERS: 2}),
            (RiskLevel.CRITICAL, {PROGRAM_MANAGERS: 2, REVIEWERS: 2}),
        ],
    )
    def test_policy_per_risk_level(self, risk, expected):
        policy = ApprovalPolicy.objects.get(risk_level=risk, is_emergency=False, solution__isnull=True)
        assert {req.group.name: req.minimum_count for req in policy.requirements.all()} == expected

    def test_emergency_policy_is_reduced(self):
        policy = ApprovalPolicy.objects.get(is_emergency=True)
        assert {req.group.name: req.minimum_count for req in policy.requirements.all()} == {
            PROGRAM_MANAGERS: 1,
            ON_CALL: 1,
        }

    def test_solution_policy_wins_over_default(self, author, program_manager, solution):
        policy = services.approval_policy_create(
            actor=program_manager,
            name="Refunds: high risk needs three reviewers",
            risk_level=RiskLevel.HIGH,
            solution=solution,
            requirements=[services.RequirementSpec(REVIEWERS, 3)],
        )
        release = submitted(author=author, solution=solution)
        assert approval_policy_status(release=release).policy == policy


class TestPolicyStatus:
    def test_shows_met_and_missing(self, high_release, program_manager, reviewer):
        _approve(high_release, program_manager, PROGRAM_MANAGERS)
        _approve(high_release, reviewer, REVIEWERS)
        status = approval_policy_status(release=high_release)
        assert not status.satisfied
        by_group = {req.group: (req.count, req.met) for req in status.requirements}
        assert by_group == {PROGRAM_MANAGERS: (1, True), REVIEWERS: (1, False)}
        assert status.describe_missing() == f"1 more from {REVIEWERS}"


class TestApprovalRules:
    def test_stale_hash_is_refused_with_the_current_hash(self, high_release, reviewer):
        with pytest.raises(StaleContentHash) as exc:
            _approve(high_release, reviewer, REVIEWERS, content_hash="0" * 64)
        assert exc.value.status_code == 409
        assert exc.value.as_dict()["current_content_hash"] == high_release.content_hash
        assert not Approval.objects.exists()

    def test_superuser_author_is_refused(self, reviewer):
        root = UserFactory(username="root.author", is_superuser=True)
        release = submitted(author=root)
        events_before = AuditEvent.objects.count()
        with pytest.raises(SeparationOfDuties) as exc:
            _approve(release, root, PROGRAM_MANAGERS)
        assert exc.value.status_code == 403
        assert not Approval.objects.exists()
        assert AuditEvent.objects.count() == events_before

    def test_last_editor_is_refused(self, author, second_author, program_manager):
        second_author.groups.add(*program_manager.groups.all())
        release = make_release(author=author, risk_level=RiskLevel.LOW)
        release_services.release_reassign(release=release, actor=author, co_authors=[second_author])
        release = release_services.release_update(release=release, actor=second_author, title="Edited by Ben")
        release = release_services.release_submit(release=release, actor=author)
        with pytest.raises(SeparationOfDuties):
            _approve(release, second_author, PROGRAM_MANAGERS)

    def test_superuser_counts_for_any_group_when_not_author(self, high_release, superuser):
        approval = _approve(high_release, superuser, REVIEWERS)
        assert approval.group.name == REVIEWERS

    def test_approver_must_belong_to_the_group(self, high_release, reviewer):
        with pytest.raises(DomainPermissionDenied):
            _approve(high_release, reviewer, PROGRAM_MANAGERS)

    def test_group_must_be_required_by_the_policy(self, high_release, oncall):
        with pytest.raises(DomainValidationError) as exc:
            _approve(high_release, oncall, ON_CALL)
        assert "group" in exc.value.as_dict()

    def test_one_person_counts_once(self, high_release, superuser):
        _approve(high_release, superuser, REVIEWERS)
        with pytest.raises(GuardFailed) as exc:
            _approve(high_release, superuser, PROGRAM_MANAGERS)
        assert exc.value.code == "already_decided"
        assert Approval.objects.count() == 1

    def test_database_enforces_one_live_decision_per_person(self, high_release, reviewer):
        first = _approve(high_release, reviewer, REVIEWERS)
        duplicate = Approval(
            release=high_release,
            approver=reviewer,
            group=first.group,
            policy=first.policy,
            decision="approve",
            content_hash=high_release.content_hash,
            expires_at=first.expires_at,
        )
        with pytest.raises(IntegrityError), transaction.atomic():
            duplicate.save()

    def test_comment_required_unless_approve(self, high_release, reviewer):
        with pytest.raises(DomainValidationError) as exc:
            _approve(high_release, reviewer, REVIEWERS, decision="reject")
        assert "comment" in exc.value.as_dict()

    def test_reject_by_a_required_group_rejects_the_release(self, high_release, reviewer):
        _approve(high_release, reviewer, REVIEWERS, decision="reject", comment="Quotes a refund rule we retired.")
        high_release.refresh_from_db()
        assert high_release.status == S.REJECTED
        assert AuditEvent.objects.filter(release_id=high_release.pk, action="release.reject").exists()
        assert Approval.objects.get().decision == "reject"

    def test_request_changes_returns_to_draft_and_dismisses_approvals(self, high_release, program_manager, reviewer):
        kept = _approve(high_release, program_manager, PROGRAM_MANAGERS)
        _approve(high_release, reviewer, REVIEWERS, decision="request_changes", comment="Add the DE disclaimer.")
        high_release.refresh_from_db()
        assert high_release.status == S.DRAFT
        kept.refresh_from_db()
        assert kept.dismissed_at is not None
        assert kept.dismiss_reason == "Changes requested: Add the DE disclaimer."
        assert Approval.objects.filter(release=high_release).count() == 2  # rows kept
        assert kept.history.order_by("-history_id").first().dismissed_at is not None
        review = Checklist.objects.get(release=high_release, gate=ChecklistGate.REVIEW)
        assert review.status == ChecklistStatus.SUPERSEDED

    def test_resubmission_starts_over(self, high_release, program_manager, reviewer, author):
        _approve(high_release, program_manager, PROGRAM_MANAGERS)
        release_services.release_request_changes(release=high_release, actor=reviewer, reason="Tone is too curt")
        release = release_services.release_update(
            release=high_release, actor=author, system_prompt="You are the refunds assistant. Be warm and precise."
        )
        release = release_services.release_submit(release=release, actor=author)
        status = approval_policy_status(release=release)
        assert all(req.count == 0 for req in status.requirements)
        assert Checklist.objects.filter(release=release, gate=ChecklistGate.REVIEW).count() == 2
        assert (
            Checklist.objects.current()
            .filter(release=release, gate=ChecklistGate.REVIEW)
            .get()
            .items.filter(state="pending")
            .count()
            == Checklist.objects.current().get(release=release, gate=ChecklistGate.REVIEW).items.count()
        )

    def test_content_change_dismisses_live_approvals(self, author, program_manager, reviewer):
        # A draft with a live decision can only come from older data; the content_changed effect still dismisses.
        release = submitted(author=author, risk_level=RiskLevel.HIGH)
        approval = _approve(release, program_manager, PROGRAM_MANAGERS)
        from releases import hooks

        with transaction.atomic():
            hooks.run_effects(
                hooks.TransitionContext(
                    release=release, event=hooks.CONTENT_CHANGED, actor=author, now=timezone.now(), reason="edit"
                )
            )
        approval.refresh_from_db()
        assert approval.dismissed_at is not None and approval.dismiss_reason == "Release content changed"

    def test_decisions_need_a_release_in_review(self, draft_release, program_manager):
        with pytest.raises(IllegalTransition):
            _approve(draft_release, program_manager, PROGRAM_MANAGERS)


class TestAutomaticApproval:
    def test_last_approval_completes(self, high_release, crew, program_manager, reviewer, second_reviewer):
        sign_checklist(release=high_release, gate=ChecklistGate.REVIEW, people=crew)
        _approve(high_release, program_manager, PROGRAM_MANAGERS)
        _approve(high_release, reviewer, REVIEWERS)
        high_release.refresh_from_db()
        assert high_release.status == S.IN_REVIEW
        _approve(high_release, second_reviewer, REVIEWERS)
        high_release.refresh_from_db()
        assert high_release.status == S.APPROVED
        event = AuditEvent.objects.get(release_id=high_release.pk, action="release.approve")
        assert event.actor == second_reviewer
        assert event.data["approvals"][REVIEWERS] == [reviewer.username, second_reviewer.username]
        review = Checklist.objects.get(release=high_release, gate=ChecklistGate.REVIEW)
        assert review.status == ChecklistStatus.PASSED and review.frozen_at is not None
        assert Checklist.objects.filter(release=high_release, gate=ChecklistGate.ROLLOUT).exists()

    def test_last_sign_off_completes(self, high_release, crew, reviewer):
        approve_per_policy(release=high_release, people=crew)
        high_release.refresh_from_db()
        assert high_release.status == S.IN_REVIEW  # the checklist is still open
        sign_checklist(release=high_release, gate=ChecklistGate.REVIEW, people=crew)
        high_release.refresh_from_db()
        assert high_release.status == S.APPROVED

    def test_plain_approve_transition_is_guarded(self, high_release, program_manager):
        with pytest.raises(GuardFailed) as exc:
            release_services.release_approve(release=high_release, actor=program_manager)
        assert exc.value.code == "approval_incomplete"
        high_release.refresh_from_db()
        assert high_release.status == S.IN_REVIEW

    def test_awaiting_my_approval(self, high_release, program_manager, reviewer, author):
        assert releases_awaiting_approval_by(user=reviewer) == [high_release]
        assert releases_awaiting_approval_by(user=author) == []
        _approve(high_release, reviewer, REVIEWERS)
        assert releases_awaiting_approval_by(user=reviewer) == []
        _approve(high_release, program_manager, PROGRAM_MANAGERS)
        second_pm = UserFactory(username="pm.three", groups=[PROGRAM_MANAGERS])
        assert releases_awaiting_approval_by(user=second_pm) == []  # the PM requirement is met


class TestExpiry:
    def test_beat_task_dismisses_expired_approvals(self, high_release, reviewer):
        approval = _approve(high_release, reviewer, REVIEWERS)
        assert services.approvals_expire(now=timezone.now()) == 0
        later = approval.expires_at + timedelta(seconds=1)
        assert services.approvals_expire(now=later) == 1
        approval.refresh_from_db()
        assert approval.dismissed_at == later and approval.dismiss_reason == "Expired after 14 days"
        assert AuditEvent.objects.filter(action="approval.expired", actor__isnull=True).count() == 1
        assert services.approvals_expire(now=later) == 0  # idempotent

    def test_expired_approvals_stop_the_rollout(self, high_release, crew, program_manager):
        release = approved(high_release, crew)
        sign_checklist(release=release, gate=ChecklistGate.ROLLOUT, people=crew)
        future = timezone.now() + timedelta(days=15)
        with time_machine.travel(future, tick=False), pytest.raises(GuardFailed) as exc:
            release_services.release_start_rollout(release=release, actor=program_manager)
        assert exc.value.code == "approvals_expired"
        release.refresh_from_db()
        assert release.status == S.APPROVED

    def test_expired_approval_can_be_renewed_while_approved(self, high_release, crew, program_manager):
        release = approved(high_release, crew)
        old = Approval.objects.get(release=release, approver=program_manager)
        future = old.expires_at + timedelta(minutes=1)
        with time_machine.travel(future, tick=False):
            renewed = _approve(release, program_manager, PROGRAM_MANAGERS)
        old.refresh_from_db()
        assert old.dismiss_reason == "Expired" and renewed.dismissed_at is None
