from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.test import TestCase
from django.utils import timezone

from core.errors import DomainPermissionDenied, DomainValidationError, GuardFailed, SeparationOfDuties
from core.models import AuditEvent
from core.roles import ON_CALL, PROGRAM_MANAGERS
from governance import services
from governance.demo import sign_checklist
from governance.models import (
    Checklist,
    ChecklistGate,
    ChecklistItem,
    ChecklistItemState,
    ChecklistStatus,
    ChecklistTemplate,
    TemplateStatus,
)
from governance.seed_content import CHECKLIST_GATES, items_for_risk
from governance.selectors import checklist_items_awaiting_sign_off_by
from releases import services as release_services
from releases.choices import ReleaseStatus as S
from releases.choices import RiskLevel
from tests.factories import UserFactory
from tests.governance.helpers import approved, rolling_out, submitted

pytestmark = pytest.mark.django_db


def _review(release) -> Checklist:
    return Checklist.objects.current().get(release=release, gate=ChecklistGate.REVIEW)


def _pending_item(release, gate=ChecklistGate.REVIEW, **filters) -> ChecklistItem:
    return (
        ChecklistItem.objects.filter(checklist__release=release, checklist__gate=gate, state="pending", **filters)
        .order_by("position")
        .first()
    )


class TestSeededTemplates:
    def test_every_gate_and_risk_level_has_an_active_template(self):
        assert ChecklistTemplate.objects.active().count() == 5 * 4

    def test_items_are_real_text_and_grow_with_risk(self):
        review = next(g for g in CHECKLIST_GATES if g.gate == "review")
        assert len(items_for_risk(review, "low")) < len(items_for_risk(review, "critical"))
        questions = " ".join(item.question for gate in CHECKLIST_GATES for item in gate.items).lower()
        for topic in ("policy", "personal data", "red-team", "knowledge-base", "human agent", "rollback", "guardrails"):
            assert topic in questions
        assert "lorem" not in questions


class TestInstantiation:
    def test_submit_instantiates_the_review_checklist_snapshot(self, high_release):
        checklist = _review(high_release)
        template = ChecklistTemplate.objects.active().get(gate="review", risk_level="high")
        assert checklist.template == template and checklist.template_version == template.version
        assert [i.question for i in checklist.items.order_by("position")] == [
            i.question for i in template.items.order_by("position")
        ]
        assert AuditEvent.objects.filter(release_id=high_release.pk, action="checklist.instantiated").exists()

    def test_template_edit_after_instantiation_leaves_the_snapshot_unchanged(
        self, high_release, program_manager, author
    ):
        checklist = _review(high_release)
        before = list(checklist.items.order_by("position").values_list("question", "guidance", "required"))
        active = ChecklistTemplate.objects.active().get(gate="review", risk_level="high")
        draft = services.checklist_template_new_version(template=active, actor=program_manager)
        specs = [
            services.TemplateItemSpec(
                question="Was the prompt reviewed by legal in every market?", signer_group="Reviewers"
            )
        ]
        services.checklist_template_update(template=draft, actor=program_manager, items=specs)
        services.checklist_template_activate(template=draft, actor=program_manager)

        checklist.refresh_from_db()
        after = list(checklist.items.order_by("position").values_list("question", "guidance", "required"))
        assert after == before and checklist.template_version == 1
        active.refresh_from_db()
        assert active.status == TemplateStatus.RETIRED
        newer = submitted(author=author, risk_level=RiskLevel.HIGH)
        assert list(_review(newer).items.values_list("question", flat=True)) == [specs[0].question]
        assert _review(newer).template_version == 2

    def test_active_template_is_immutable(self, program_manager):
        active = ChecklistTemplate.objects.active().get(gate="rollout", risk_level="low")
        with pytest.raises(GuardFailed) as exc:
            services.checklist_template_update(template=active, actor=program_manager, name="Renamed")
        assert exc.value.code == "template_immutable"

    def test_template_signer_group_must_be_a_signing_role(self, program_manager):
        with pytest.raises(DomainValidationError):
            services.checklist_template_create(
                actor=program_manager,
                gate="review",
                risk_level="low",
                name="Bad",
                items=[services.TemplateItemSpec(question="Self-check?", signer_group="Authors")],
            )

    def test_emergency_release_skips_review_and_owes_retro(self, author, program_manager, oncall, crew):
        release = submitted(author=author, is_emergency=True, risk_level=RiskLevel.HIGH)
        assert not Checklist.objects.filter(release=release, gate=ChecklistGate.REVIEW).exists()
        services.approval_record(
            release=release, approver=program_manager, group=PROGRAM_MANAGERS, content_hash=release.content_hash
        )
        services.approval_record(release=release, approver=oncall, group=ON_CALL, content_hash=release.content_hash)
        release.refresh_from_db()
        assert release.status == S.APPROVED
        sign_checklist(release=release, gate=ChecklistGate.ROLLOUT, people=crew)
        release = release_services.release_start_rollout(release=release, actor=program_manager)
        retro = Checklist.objects.get(release=release, gate=ChecklistGate.RETRO_REVIEW)
        assert retro.due_at is not None
        assert abs(retro.due_at - (timezone.now() + timedelta(hours=72))) < timedelta(minutes=1)


class TestSignOff:
    def test_sign_off_records_who_when_evidence_note(self, high_release, reviewer):
        item = _pending_item(high_release, evidence_required=True)
        signed = services.checklist_item_sign_off(
            item=item, actor=reviewer, evidence_url="https://wiki.example.com/policy-review/123", note="All quoted."
        )
        assert signed.state == ChecklistItemState.SIGNED and signed.signed_by == reviewer
        assert signed.signed_at is not None and signed.note == "All quoted."
        assert signed.history.order_by("-history_id").first().history_user == reviewer
        assert AuditEvent.objects.filter(action="checklist_item.signed", object_id=str(item.pk)).exists()

    def test_evidence_url_required_where_asked(self, high_release, reviewer):
        item = _pending_item(high_release, evidence_required=True)
        with pytest.raises(DomainValidationError) as exc:
            services.checklist_item_sign_off(item=item, actor=reviewer)
        assert "evidence_url" in exc.value.as_dict()
        item.refresh_from_db()
        assert item.state == "pending"

    def test_author_never_signs_even_as_superuser(self, reviewer):
        root = UserFactory(username="root.writer", is_superuser=True)
        release = submitted(author=root, risk_level=RiskLevel.HIGH)
        with pytest.raises(SeparationOfDuties):
            services.checklist_item_sign_off(item=_pending_item(release), actor=root, evidence_url="https://x.example")

    def test_only_the_items_group_signs(self, high_release, oncall):
        item = _pending_item(high_release, signer_group__name="Reviewers")
        with pytest.raises(DomainPermissionDenied):
            services.checklist_item_sign_off(item=item, actor=oncall, evidence_url="https://x.example")

    def test_already_signed_item_is_refused(self, high_release, reviewer, second_reviewer):
        item = _pending_item(high_release, evidence_required=False, signer_group__name="Reviewers")
        services.checklist_item_sign_off(item=item, actor=reviewer)
        with pytest.raises(GuardFailed) as exc:
            services.checklist_item_sign_off(item=item, actor=second_reviewer)
        assert exc.value.code == "item_already_resolved"

    def test_mark_na_only_optional_with_justification(self, high_release, reviewer):
        required = _pending_item(high_release, required=True, signer_group__name="Reviewers")
        with pytest.raises(DomainValidationError):
            services.checklist_item_mark_na(item=required, actor=reviewer, justification="Does not apply")
        optional = _pending_item(high_release, required=False)
        with pytest.raises(DomainValidationError):
            services.checklist_item_mark_na(item=optional, actor=reviewer, justification="  ")
        done = services.checklist_item_mark_na(item=optional, actor=reviewer, justification="No new data category.")
        assert done.state == ChecklistItemState.NOT_APPLICABLE and done.na_justification == "No new data category."

    def test_passed_gate_freezes_its_checklist(self, high_release, crew, reviewer):
        release = approved(high_release, crew)
        review = _review(release)
        assert review.status == ChecklistStatus.PASSED
        # The frozen checklist refuses any further change.
        item = review.items.first()
        with pytest.raises(GuardFailed) as exc:
            services.checklist_item_mark_na(item=item, actor=reviewer, justification="late")
        assert exc.value.code in {"checklist_frozen", "item_already_resolved"}

    def test_awaiting_my_sign_off(self, high_release, reviewer, author, oncall):
        mine = checklist_items_awaiting_sign_off_by(user=reviewer)
        assert mine and all(item.signer_group.name == "Reviewers" for item in mine)
        assert checklist_items_awaiting_sign_off_by(user=author) == []
        assert all(item.signer_group.name == ON_CALL for item in checklist_items_awaiting_sign_off_by(user=oncall))


class TestGates:
    def test_rollout_checklist_blocks_start_rollout(self, high_release, crew, program_manager):
        release = approved(high_release, crew)
        with pytest.raises(GuardFailed) as exc:
            release_services.release_start_rollout(release=release, actor=program_manager)
        assert exc.value.code == "checklist_incomplete" and exc.value.extra["gate"] == "rollout"

    def test_launch_checklist_blocks_the_launching_promotion(self, author, crew, program_manager):
        release = rolling_out(submitted(author=author, risk_level=RiskLevel.LOW), crew, program_manager)
        for _ in range(2):  # canary → half → full: not launching yet
            release = release_services.release_promote(
                release=release, actor=program_manager, override=True, reason="hold waived in test"
            )
        with pytest.raises(GuardFailed) as exc:
            release_services.release_promote(release=release, actor=program_manager, override=True, reason="launch")
        assert exc.value.extra["gate"] == "launch"
        sign_checklist(release=release, gate=ChecklistGate.LAUNCH, people=crew)
        release = release_services.release_promote(
            release=release, actor=program_manager, override=True, reason="launch"
        )
        assert release.status == S.LAUNCHED
        assert Checklist.objects.get(release=release, gate="launch").status == ChecklistStatus.PASSED

    def test_verification_checklist_blocks_completion(self, author, crew, program_manager):
        release = rolling_out(submitted(author=author, risk_level=RiskLevel.LOW), crew, program_manager)
        while release.status == S.ROLLING_OUT:
            sign_checklist(release=release, gate=ChecklistGate.LAUNCH, people=crew)
            release = release_services.release_promote(
                release=release, actor=program_manager, override=True, reason="hold waived in test"
            )
        release = release_services.release_begin_verification(release=release, actor=program_manager)
        release.verification_started_at = timezone.now() - timedelta(days=8)
        release.save(update_fields=["verification_started_at"])
        with pytest.raises(GuardFailed) as exc:
            release_services.release_complete_verification(release=release, actor=program_manager)
        assert exc.value.extra["gate"] == "verification"
        sign_checklist(release=release, gate=ChecklistGate.VERIFICATION, people=crew)
        release = release_services.release_complete_verification(release=release, actor=program_manager)
        assert release.status == S.VERIFIED


class TestRetroReviewEscalation:
    def _emergency_live(self, author, crew, program_manager, oncall):
        release = submitted(author=author, is_emergency=True, risk_level=RiskLevel.MEDIUM)
        for user, group in ((program_manager, PROGRAM_MANAGERS), (oncall, ON_CALL)):
            services.approval_record(release=release, approver=user, group=group, content_hash=release.content_hash)
        sign_checklist(release=release, gate=ChecklistGate.ROLLOUT, people=crew)
        return release_services.release_start_rollout(release=release, actor=program_manager)

    def test_overdue_retro_review_escalates_once(self, author, crew, program_manager, oncall, settings):
        settings.ADMINS = [("Governance", "governance@example.com")]
        release = self._emergency_live(author, crew, program_manager, oncall)
        retro = Checklist.objects.get(release=release, gate=ChecklistGate.RETRO_REVIEW)
        assert services.retro_reviews_escalate(now=timezone.now()) == 0
        later = retro.due_at + timedelta(minutes=5)
        with TestCase.captureOnCommitCallbacks(execute=True):
            assert services.retro_reviews_escalate(now=later) == 1
        assert services.retro_reviews_escalate(now=later) == 0
        retro.refresh_from_db()
        assert retro.escalated_at == later
        event = AuditEvent.objects.get(action="retro_review.overdue")
        assert event.actor is None and event.release_id == release.pk
        assert len(mail.outbox) == 1 and "Retro-review overdue" in mail.outbox[0].subject

    def test_completed_retro_review_is_frozen_not_escalated(self, author, crew, program_manager, oncall):
        release = self._emergency_live(author, crew, program_manager, oncall)
        sign_checklist(release=release, gate=ChecklistGate.RETRO_REVIEW, people=crew)
        retro = Checklist.objects.get(release=release, gate=ChecklistGate.RETRO_REVIEW)
        assert retro.status == ChecklistStatus.PASSED
        assert services.retro_reviews_escalate(now=retro.due_at + timedelta(hours=1)) == 0
