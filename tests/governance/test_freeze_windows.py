from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.errors import DomainPermissionDenied, DomainValidationError, GuardFailed
from core.models import AuditEvent
from core.roles import ON_CALL, PROGRAM_MANAGERS
from governance import services
from governance.demo import sign_checklist
from governance.models import Checklist, ChecklistGate
from releases import services as release_services
from releases.choices import ReleaseStatus as S
from releases.choices import RiskLevel
from tests.governance.helpers import approved, rolling_out, submitted

pytestmark = pytest.mark.django_db


def _freeze(pm, markets=(), **kwargs):
    now = timezone.now()
    return services.freeze_window_create(
        actor=pm,
        name=kwargs.get("name", "Black Friday"),
        starts_at=kwargs.get("starts_at", now - timedelta(hours=1)),
        ends_at=kwargs.get("ends_at", now + timedelta(days=2)),
        reason="Peak sales: no chatbot changes.",
        markets=markets,
    )


def _ready_to_roll(release, crew):
    release = approved(release, crew)
    sign_checklist(release=release, gate=ChecklistGate.ROLLOUT, people=crew)
    return release


def _emergency_ready(author, crew, program_manager, oncall):
    release = submitted(author=author, is_emergency=True, risk_level=RiskLevel.MEDIUM)
    for user, group in ((program_manager, PROGRAM_MANAGERS), (oncall, ON_CALL)):
        services.approval_record(release=release, approver=user, group=group, content_hash=release.content_hash)
    release.refresh_from_db()
    sign_checklist(release=release, gate=ChecklistGate.ROLLOUT, people=crew)
    return release


class TestRefusal:
    def test_start_rollout_refused_inside_a_window(self, high_release, crew, program_manager):
        release = _ready_to_roll(high_release, crew)
        window = _freeze(program_manager)
        events = AuditEvent.objects.count()
        with pytest.raises(GuardFailed) as exc:
            release_services.release_start_rollout(release=release, actor=program_manager)
        assert exc.value.code == "freeze_window" and exc.value.extra["freeze_windows"] == [window.pk]
        release.refresh_from_db()
        assert release.status == S.APPROVED and AuditEvent.objects.count() == events

    def test_window_of_other_markets_does_not_block(self, high_release, crew, program_manager):
        release = _ready_to_roll(high_release, crew)  # markets US, DE
        _freeze(program_manager, markets=["JP"])
        assert release_services.release_start_rollout(release=release, actor=program_manager).status == S.ROLLING_OUT

    def test_future_or_cancelled_windows_do_not_block(self, high_release, crew, program_manager):
        release = _ready_to_roll(high_release, crew)
        now = timezone.now()
        _freeze(program_manager, starts_at=now + timedelta(days=1), ends_at=now + timedelta(days=2))
        window = _freeze(program_manager, markets=["DE"])
        services.freeze_window_cancel(window=window, actor=program_manager, reason="Sale moved a week")
        assert release_services.release_start_rollout(release=release, actor=program_manager).status == S.ROLLING_OUT

    def test_promote_refused_inside_a_window(self, author, crew, program_manager):
        release = rolling_out(submitted(author=author, risk_level=RiskLevel.LOW), crew, program_manager)
        _freeze(program_manager, markets=["US"])
        with pytest.raises(GuardFailed) as exc:
            release_services.release_promote(release=release, actor=program_manager, override=True, reason="go")
        assert exc.value.code == "freeze_override_not_emergency"
        with pytest.raises(GuardFailed) as exc:
            release_services.release_promote(release=release, actor=program_manager)
        assert exc.value.code in {"freeze_window", "hold_time"}

    def test_override_of_a_normal_release_is_refused(self, high_release, crew, program_manager):
        release = _ready_to_roll(high_release, crew)
        _freeze(program_manager)
        with pytest.raises(GuardFailed) as exc:
            release_services.release_start_rollout(
                release=release, actor=program_manager, override=True, reason="Customers are hurting"
            )
        assert exc.value.code == "freeze_override_not_emergency"

    def test_window_must_end_after_it_starts(self, program_manager):
        now = timezone.now()
        with pytest.raises(DomainValidationError):
            _freeze(program_manager, starts_at=now, ends_at=now - timedelta(hours=1))

    def test_only_program_managers_create_windows(self, reviewer):
        with pytest.raises(DomainPermissionDenied):
            _freeze(reviewer)


class TestEmergencyOverride:
    def test_audited_override_owes_a_retro_review(self, author, crew, program_manager, oncall):
        release = _emergency_ready(author, crew, program_manager, oncall)
        window = _freeze(program_manager)
        release = release_services.release_start_rollout(
            release=release, actor=program_manager, override=True, reason="Bot quotes a retired refund rule"
        )
        assert release.status == S.ROLLING_OUT
        override = AuditEvent.objects.get(action="freeze_window.overridden")
        assert override.actor == program_manager and override.release_id == release.pk
        assert override.object_id == str(window.pk) and override.reason == "Bot quotes a retired refund rule"
        transition = AuditEvent.objects.get(release_id=release.pk, action="release.start_rollout")
        assert transition.data["override"] is True and transition.data["freeze_override"] == [window.pk]
        retro = Checklist.objects.get(release=release, gate=ChecklistGate.RETRO_REVIEW)
        assert retro.due_at is not None and retro.due_at <= timezone.now() + timedelta(hours=72)

    def test_override_needs_a_reason(self, author, crew, program_manager, oncall):
        release = _emergency_ready(author, crew, program_manager, oncall)
        _freeze(program_manager)
        with pytest.raises(DomainValidationError):
            release_services.release_start_rollout(release=release, actor=program_manager, override=True, reason="")

    def test_superuser_who_is_not_a_program_manager_may_override(
        self, author, crew, program_manager, oncall, superuser
    ):
        release = _emergency_ready(author, crew, program_manager, oncall)
        _freeze(program_manager)
        release = release_services.release_start_rollout(
            release=release, actor=superuser, override=True, reason="Incident 4711"
        )
        assert release.status == S.ROLLING_OUT

    def test_override_without_program_manager_role_is_refused(self, author, crew, program_manager, oncall):
        from django.contrib.auth.models import Permission

        release = _emergency_ready(author, crew, program_manager, oncall)
        _freeze(program_manager)
        # An on-call engineer granted rollout rights directly is still not a program manager.
        oncall.user_permissions.add(Permission.objects.get(codename="manage_rollout"))
        oncall = type(oncall).objects.get(pk=oncall.pk)
        with pytest.raises(DomainPermissionDenied):
            release_services.release_start_rollout(release=release, actor=oncall, override=True, reason="Incident")
