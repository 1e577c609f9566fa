"""Rollout automation and the guardrail guard on promote / complete_verification."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from core.errors import GuardFailed
from monitoring.choices import Outcome
from monitoring.models import Evaluation
from monitoring.services import guardrails_evaluate, rollout_automate
from monitoring.services import rollout as rollout_services
from releases import services as release_services
from releases.choices import ReleaseStatus
from tests.factories import DEFAULT_STAGES, SolutionFactory, make_release

from .conftest import ingest, make_guardrail, put_live, sample_row

pytestmark = pytest.mark.django_db


@pytest.fixture
def auto_release(author, solution, no_default_guardrails):
    release = make_release(author=author, solution=solution, auto_promote=True)
    # The canary's one-hour hold has passed, and its stage started before the samples' windows (floored to the
    # hour, up to three hours back) so they count for it.
    return put_live(release, stage_age=timedelta(hours=3))


def _green(release, error_rate):
    make_guardrail(release, error_rate)
    for market in ("US", "DE"):
        ingest(sample_row(release, "error_rate", numerator=2, denominator=1000, market=market))
    guardrails_evaluate()
    assert set(Evaluation.objects.filter(release=release).values_list("outcome", flat=True)) == {Outcome.PASS}


def test_auto_promotes_when_hold_sample_and_guardrails_allow(auto_release, error_rate):
    _green(auto_release, error_rate)
    result = rollout_automate()
    assert result.promoted == [auto_release.pk]
    auto_release.refresh_from_db()
    assert auto_release.current_stage.position == 2
    assert auto_release.history.first().history_user is None


def test_no_auto_promotion_before_the_hold_time(auto_release, error_rate):
    _green(auto_release, error_rate)
    result = rollout_automate(now=auto_release.stage_started_at + timedelta(minutes=10))
    assert result.promoted == [] and result.skipped[auto_release.pk] == "hold time"


def test_no_auto_promotion_below_the_stage_sample(author, solution, no_default_guardrails, error_rate):
    stages = tuple(replace(stage, min_sample_size=50_000) for stage in DEFAULT_STAGES)
    release = make_release(author=author, solution=solution, auto_promote=True, stages=stages)
    auto_release = put_live(release, stage_age=timedelta(hours=3))
    _green(auto_release, error_rate)
    result = rollout_automate()
    assert result.promoted == [] and "sample" in result.skipped[auto_release.pk]


def test_no_auto_promotion_without_passing_guardrails(auto_release, error_rate):
    make_guardrail(auto_release, error_rate)
    # Not evaluated yet: the system does not promote on silence.
    assert rollout_automate().promoted == []


def test_manual_promotion_is_refused_while_a_guardrail_fails_unless_overridden(
    rolling_release, error_rate, program_manager
):
    make_guardrail(rolling_release, error_rate)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    guardrails_evaluate()
    with time_machine.travel(timezone.now() + timedelta(hours=3)):  # the stage's hold time has run
        with pytest.raises(GuardFailed) as refused:
            release_services.release_promote(release=rolling_release, actor=program_manager)
        assert refused.value.code == "guardrails_failing"
        promoted = release_services.release_promote(
            release=rolling_release,
            actor=program_manager,
            override=True,
            reason="Known provider blip, approved by lead",
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
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        assert rollout_automate().verified == [release.pk]
    release.refresh_from_db()
    assert release.status == ReleaseStatus.VERIFIED
    assert release.history.first().history_user is None


def test_an_unsigned_verification_checklist_leaves_it_to_people(author, solution, no_default_guardrails, error_rate):
    release = put_live(make_release(author=author, solution=solution), ReleaseStatus.VERIFYING)
    _green(release, error_rate)
    with time_machine.travel(timezone.now() + timedelta(days=8)):
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
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        assert rollout_automate().verified == []
    release.refresh_from_db()
    assert release.status == ReleaseStatus.VERIFYING


def test_one_release_raising_does_not_stop_the_others(author, no_default_guardrails, error_rate, monkeypatch):
    broken = put_live(
        make_release(author=author, solution=SolutionFactory(), auto_promote=True), stage_age=timedelta(hours=3)
    )
    healthy = put_live(
        make_release(author=author, solution=SolutionFactory(), auto_promote=True), stage_age=timedelta(hours=3)
    )
    _green(broken, error_rate)
    _green(healthy, error_rate)
    real_status = rollout_services.release_guardrail_status

    def status(*, release):
        if release.pk == broken.pk:
            raise ZeroDivisionError("a bug met this release's data")
        return real_status(release=release)

    monkeypatch.setattr(rollout_services, "release_guardrail_status", status)
    result = rollout_automate()
    assert result.promoted == [healthy.pk]
    assert result.failed == {broken.pk: "ZeroDivisionError: a bug met this release's data"}
    broken.refresh_from_db()
    assert broken.current_stage.position == 1


def test_a_solutions_first_release_under_the_seeded_defaults_can_be_promoted_automatically(author, solution):
    # Issue 9 (9): every seeded relative default had no baseline on a first release and stayed insufficient_data,
    # so auto-promotion never happened. With the absolute floors, good data without a control arm is enough.
    release = put_live(make_release(author=author, solution=solution, auto_promote=True, risk_level="medium"))
    start = timezone.now() - timedelta(days=2)
    for market in ("US", "DE"):
        ingest(
            sample_row(release, "error_rate", numerator=10, denominator=5000, market=market, window_start=start),
            sample_row(release, "escalation_rate", numerator=300, denominator=2000, market=market, window_start=start),
            sample_row(release, "csat", numerator=1700, denominator=2000, market=market, window_start=start),
        )
    guardrails_evaluate()
    looks = Evaluation.objects.filter(release=release)
    assert {e.guardrail.risk_level for e in looks} == {"medium"} and looks.count() == 6
    assert {(e.outcome, e.reason) for e in looks if e.guardrail.relative_margin is not None} == {
        (Outcome.PASS, "no_control_arm")
    }
    assert {e.outcome for e in looks} == {Outcome.PASS}
    assert rollout_automate().promoted == [release.pk]


def test_a_person_may_override_guardrails_to_complete_verification_but_never_the_window(
    author, solution, no_default_guardrails, error_rate, program_manager, monkeypatch
):
    monkeypatch.setattr("governance.services.checklist_gate_guard", lambda **kwargs: None)
    release = put_live(make_release(author=author, solution=solution), ReleaseStatus.VERIFYING)
    make_guardrail(release, error_rate)
    ingest(sample_row(release, "error_rate", numerator=300, denominator=1000))
    guardrails_evaluate()
    with pytest.raises(GuardFailed) as window:
        release_services.release_complete_verification(
            release=release, actor=program_manager, override=True, reason="Known data gap"
        )
    assert window.value.code == "verification_window"
    with time_machine.travel(timezone.now() + timedelta(days=8)):
        with pytest.raises(GuardFailed):
            release_services.release_complete_verification(release=release, actor=program_manager)
        verified = release_services.release_complete_verification(
            release=release, actor=program_manager, override=True, reason="Error spike was the vendor outage"
        )
    assert verified.status == ReleaseStatus.VERIFIED
