"""Rollout automation and the guardrail guard on promote / complete_verification."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.errors import GuardFailed
from monitoring.choices import Outcome
from monitoring.models import Evaluation
from monitoring.services import guardrails_evaluate, rollout_automate
from releases import services as release_services
from releases.choices import ReleaseStatus
from releases.models import Release
from tests.factories import make_release

from .conftest import ingest, make_guardrail, put_live, sample_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def auto_release(author, solution, no_default_guardrails):
    release = make_release(author=author, solution=solution, auto_promote=True)
    return put_live(release, stage_age=timedelta(hours=2))  # the canary's one-hour hold has passed


def _green(release, error_rate):
    make_guardrail(release, error_rate)
    for market in ("US", "DE"):
        ingest(sample_row(release, "error_rate", numerator=2, denominator=1000, market=market))
    guardrails_evaluate()
    assert set(Evaluation.objects.filter(release=release).values_list("outcome", flat=True)) == {Outcome.PASS}


def test_auto_promotes_when_hold_sample_and_guardrails_allow(auto_release, error_rate):
    _green(auto_release, error_rate)
    # Samples must start after the stage did: make the stage start before them.
    Release.objects.filter(pk=auto_release.pk).update(stage_started_at=timezone.now() - timedelta(hours=3))
    result = rollout_automate()
    assert result.promoted == [auto_release.pk]
    auto_release.refresh_from_db()
    assert auto_release.current_stage.position == 2
    assert auto_release.history.first().history_user is None


def test_no_auto_promotion_before_the_hold_time(auto_release, error_rate):
    _green(auto_release, error_rate)
    Release.objects.filter(pk=auto_release.pk).update(stage_started_at=timezone.now() - timedelta(minutes=10))
    assert rollout_automate().promoted == []


def test_no_auto_promotion_below_the_stage_sample(auto_release, error_rate):
    _green(auto_release, error_rate)
    stage = auto_release.current_stage
    type(stage).objects.filter(pk=stage.pk).update(min_sample_size=50_000)
    Release.objects.filter(pk=auto_release.pk).update(stage_started_at=timezone.now() - timedelta(hours=3))
    result = rollout_automate()
    assert result.promoted == [] and "sample" in result.skipped[auto_release.pk]


def test_no_auto_promotion_without_passing_guardrails(auto_release, error_rate):
    make_guardrail(auto_release, error_rate)
    Release.objects.filter(pk=auto_release.pk).update(stage_started_at=timezone.now() - timedelta(hours=3))
    # Not evaluated yet: the system does not promote on silence.
    assert rollout_automate().promoted == []


def test_manual_promotion_is_refused_while_a_guardrail_fails_unless_overridden(
    rolling_release, error_rate, program_manager
):
    make_guardrail(rolling_release, error_rate)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    guardrails_evaluate()
    Release.objects.filter(pk=rolling_release.pk).update(stage_started_at=timezone.now() - timedelta(hours=3))
    with pytest.raises(GuardFailed) as refused:
        release_services.release_promote(release=rolling_release, actor=program_manager)
    assert refused.value.code == "guardrails_failing"
    promoted = release_services.release_promote(
        release=rolling_release, actor=program_manager, override=True, reason="Known provider blip, approved by lead"
    )
    assert promoted.current_stage.position == 2


def test_completes_verification_when_the_window_ends_green(
    author, solution, no_default_guardrails, error_rate, monkeypatch
):
    # Governance's checklist guard is governance's to test; here the checklist counts as signed.
    monkeypatch.setattr("governance.services.checklist_gate_guard", lambda **kwargs: None)
    release = put_live(make_release(author=author, solution=solution), ReleaseStatus.VERIFYING)
    _green(release, error_rate)
    assert rollout_automate().verified == []  # the window has not ended
    Release.objects.filter(pk=release.pk).update(verification_started_at=timezone.now() - timedelta(days=8))
    assert rollout_automate().verified == [release.pk]
    release.refresh_from_db()
    assert release.status == ReleaseStatus.VERIFIED
    assert release.history.first().history_user is None


def test_an_unsigned_verification_checklist_leaves_it_to_people(author, solution, no_default_guardrails, error_rate):
    release = put_live(make_release(author=author, solution=solution), ReleaseStatus.VERIFYING)
    _green(release, error_rate)
    Release.objects.filter(pk=release.pk).update(verification_started_at=timezone.now() - timedelta(days=8))
    result = rollout_automate()
    assert result.verified == []
    assert "checklist" in result.skipped[release.pk]
    release.refresh_from_db()
    assert release.status == ReleaseStatus.VERIFYING


def test_no_verification_while_a_guardrail_fails(author, solution, no_default_guardrails, error_rate):
    release = put_live(make_release(author=author, solution=solution), ReleaseStatus.VERIFYING)
    make_guardrail(release, error_rate)
    ingest(sample_row(release, "error_rate", numerator=300, denominator=1000))
    guardrails_evaluate()
    Release.objects.filter(pk=release.pk).update(verification_started_at=timezone.now() - timedelta(days=8))
    assert rollout_automate().verified == []
    release.refresh_from_db()
    assert release.status == ReleaseStatus.VERIFYING
