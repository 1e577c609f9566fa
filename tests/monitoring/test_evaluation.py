"""Guardrail evaluation: outcomes, counting semantics, idempotence, actions — through the real service."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from monitoring.choices import (
    BaselineSource,
    GuardrailAction,
    IncidentEventKind,
    IncidentStatus,
    Outcome,
    Resolution,
)
from monitoring.models import Evaluation, Incident, IncidentEvent, MetricDefinition
from monitoring.services import guardrails_evaluate, incident_resolve
from releases.choices import ReleaseStatus
from tests.factories import SolutionFactory, advance_release, make_release

from .conftest import PHASE_AGE, ingest, make_guardrail, minutes, put_live, sample_row

pytestmark = pytest.mark.django_db


def _cycle(at):
    return guardrails_evaluate(now=at)


def test_the_cohort_is_the_current_phase_and_a_young_phase_has_no_complete_window(
    author, solution, program_manager, no_default_guardrails, error_rate
):
    # Replaces the rolling-window test: the cohort is every matured sample whose window starts in the phase.
    release = put_live(
        make_release(author=author, solution=solution), program_manager=program_manager, stage_age=timedelta(0)
    )
    make_guardrail(release, error_rate)
    ingest(sample_row(release, "error_rate", numerator=300, denominator=1000))  # began before the stage did
    _cycle(timezone.now())
    us = Evaluation.objects.get(market="US")
    assert (us.outcome, us.reason, us.samples, us.n) == (Outcome.INSUFFICIENT_DATA, "no_complete_window", 0, 0)
    assert us.window_start == release.stage_started_at
    assert not Incident.objects.exists()


# --- the service ----------------------------------------------------------------------------------------------


def test_breach_opens_one_incident_with_its_evaluation(rolling_release, error_rate):
    guardrail = make_guardrail(rolling_release, error_rate)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    result = _cycle(timezone.now())
    assert result.incidents_opened == 1
    us = Evaluation.objects.get(release=rolling_release, market="US")
    assert (us.outcome, us.n, us.breached) == (Outcome.FAIL, 1000, True)
    assert us.lower > 0.05 and us.observed == pytest.approx(0.3)
    de = Evaluation.objects.get(release=rolling_release, market="DE")
    assert de.outcome == Outcome.INSUFFICIENT_DATA
    incident = Incident.objects.get()
    assert incident.dedup_key == f"{rolling_release.pk}:{guardrail.pk}:US"
    assert incident.status == IncidentStatus.TRIGGERED
    assert incident.events.get(kind=IncidentEventKind.OPENED).evaluation == us


def test_rerunning_the_same_window_changes_nothing(rolling_release, error_rate, webhook_endpoint):
    make_guardrail(rolling_release, error_rate)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    now = timezone.now()
    _cycle(now)
    snapshot = (Evaluation.objects.count(), IncidentEvent.objects.count(), webhook_endpoint.deliveries.count())
    # A look follows the data, not the clock: an hour later, with nothing new, nothing is written.
    second = _cycle(now + timedelta(hours=1))
    assert second.evaluations == 0 and second.skipped == 2
    assert (Evaluation.objects.count(), IncidentEvent.objects.count(), webhook_endpoint.deliveries.count()) == (
        snapshot
    )
    assert Incident.objects.get().trigger_count == 1


def test_insufficient_data_never_opens_an_incident(rolling_release, error_rate):
    make_guardrail(rolling_release, error_rate, min_sample_size=5000)
    ingest(sample_row(rolling_release, "error_rate", numerator=900, denominator=1000))  # terrible, but small
    now = timezone.now()
    for look in range(5):
        _cycle(now + minutes(look))
    assert set(Evaluation.objects.values_list("outcome", flat=True)) == {Outcome.INSUFFICIENT_DATA}
    assert not Incident.objects.exists()


def _hour(hours_ago: int):
    return (timezone.now() - timedelta(hours=hours_ago)).replace(minute=0, second=0, microsecond=0)


def test_failure_limit_opens_the_incident_on_the_failure_after_the_limit(rolling_release, error_rate):
    # Counting is over looks at distinct data (was: over re-evaluations of one window): one window per look.
    make_guardrail(rolling_release, error_rate, failure_limit=2)
    now = timezone.now()
    for look in range(3):
        ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000, window_start=_hour(5 - look)))
        _cycle(now + minutes(look))
        assert Incident.objects.count() == (1 if look == 2 else 0)
    assert list(Evaluation.objects.filter(market="US").order_by("id").values_list("failures", "breached")) == [
        (1, False),
        (2, False),
        (3, True),
    ]


def test_reevaluating_unchanged_data_moves_no_counter(rolling_release, error_rate):
    # Issue 9 (3): an unchanged hourly sample breached failure_limit=3 on its 4th re-evaluation. No more.
    make_guardrail(rolling_release, error_rate, failure_limit=3)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    now = timezone.now()
    for look in range(10):
        _cycle(now + timedelta(minutes=5 * look))
    us = Evaluation.objects.get(market="US")
    assert (us.outcome, us.failures, us.breached, us.samples) == (Outcome.FAIL, 1, False, 1)
    assert not Incident.objects.exists()


def test_daily_samples_reach_a_verdict(author, solution, program_manager, no_default_guardrails, error_rate):
    # Issue 9 (4): daily windows never lay inside a 24 h evaluation window ending on the interval; in a cohort
    # each matured day is judged, whenever it is ingested.
    release = put_live(
        make_release(author=author, solution=solution), program_manager=program_manager, stage_age=PHASE_AGE
    )
    make_guardrail(release, error_rate, absolute_threshold=0.05, min_sample_size=500)
    day = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    ingest(
        sample_row(
            release,
            "error_rate",
            numerator=4,
            denominator=2000,
            window_start=day,
            window_end=(day + timedelta(days=1)).isoformat(),
        )
    )
    _cycle(timezone.now())
    us = Evaluation.objects.get(market="US")
    assert (us.outcome, us.n, us.samples) == (Outcome.PASS, 2000, 1)
    ingest(
        sample_row(
            release,
            "error_rate",
            numerator=600,
            denominator=2000,
            window_start=day + timedelta(days=1),
            window_end=(day + timedelta(days=2)).isoformat(),
        )
    )
    _cycle(timezone.now() + minutes(1))
    latest = Evaluation.objects.filter(market="US").order_by("-id").first()
    assert (latest.outcome, latest.n, latest.samples) == (Outcome.FAIL, 4000, 2)


def test_dry_run_evaluates_but_never_acts(rolling_release, error_rate):
    make_guardrail(rolling_release, error_rate, dry_run=True, action=GuardrailAction.ROLLBACK)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    _cycle(timezone.now())
    evaluation = Evaluation.objects.get(market="US")
    assert evaluation.outcome == Outcome.FAIL and evaluation.dry_run
    assert not Incident.objects.exists()
    rolling_release.refresh_from_db()
    assert rolling_release.status == ReleaseStatus.ROLLING_OUT


def test_pause_action_runs_through_the_release_service_as_the_system(rolling_release, error_rate):
    make_guardrail(rolling_release, error_rate, action=GuardrailAction.PAUSE)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    result = _cycle(timezone.now())
    assert result.actions_taken == 1
    rolling_release.refresh_from_db()
    assert rolling_release.status == ReleaseStatus.PAUSED
    latest = rolling_release.history.first()
    assert latest.history_user is None and "Guardrail" in latest.history_change_reason
    from core.models import AuditEvent

    event = AuditEvent.objects.filter(release_id=rolling_release.pk, action="release.pause").get()
    assert event.actor_id is None and event.actor_label == "system"
    incident = Incident.objects.get()
    assert incident.events.filter(kind=IncidentEventKind.ACTION_TAKEN).exists()
    # Failing again while paused: no second pause attempt, no noise.
    _cycle(timezone.now() + minutes(1))
    assert incident.events.filter(kind=IncidentEventKind.ACTION_TAKEN).count() == 1


def test_rollback_action_on_a_verifying_release(author, solution, no_default_guardrails, error_rate):
    release = put_live(make_release(author=author, solution=solution), ReleaseStatus.VERIFYING, stage_age=PHASE_AGE)
    make_guardrail(release, error_rate, action=GuardrailAction.ROLLBACK)
    ingest(sample_row(release, "error_rate", numerator=300, denominator=1000))
    _cycle(timezone.now())
    release.refresh_from_db()
    assert release.status == ReleaseStatus.ROLLED_BACK


def test_oscillating_metric_is_one_incident_not_a_page_storm(rolling_release, error_rate, webhook_endpoint):
    make_guardrail(rolling_release, error_rate, consecutive_success_limit=3)
    start = timezone.now() - timedelta(hours=3)
    now = timezone.now()
    for look in range(8):
        bad = look % 2 == 0
        # Each look re-sends the same window with new counts (idempotent upsert), alternating bad and good.
        ingest(
            sample_row(
                rolling_release,
                "error_rate",
                numerator=300 if bad else 5,
                denominator=1000,
                window_start=start,
            )
        )
        _cycle(now + minutes(look))
    incident = Incident.objects.get()
    assert incident.status == IncidentStatus.TRIGGERED
    assert incident.trigger_count == 4
    opened_notifications = webhook_endpoint.deliveries.filter(payload__event=IncidentEventKind.OPENED).count()
    assert opened_notifications == 1
    assert webhook_endpoint.deliveries.count() == 1


def test_data_gap_keeps_the_incident_open(rolling_release, error_rate, program_manager):
    # Was: the window left a rolling span. A cohort keeps its data; a gap is a new phase with none yet (a resume).
    make_guardrail(rolling_release, error_rate, action=GuardrailAction.PAUSE)
    start = timezone.now() - timedelta(hours=3)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000, window_start=start))
    now = timezone.now()
    _cycle(now)
    from releases import services as release_services

    rolling_release.refresh_from_db()
    release_services.release_resume(release=rolling_release, actor=program_manager, reason="fix deployed")
    for look in range(4):
        _cycle(now + minutes(look + 1))
    latest = Evaluation.objects.filter(market="US").order_by("-id").first()
    assert (latest.outcome, latest.reason) == (Outcome.INSUFFICIENT_DATA, "no_complete_window")
    assert Evaluation.objects.filter(market="US").count() == 2  # one look per phase's data, not per cycle
    assert Incident.objects.get().status == IncidentStatus.TRIGGERED


def test_auto_resolve_after_consecutive_passes_and_reopen_links_the_old_incident(rolling_release, error_rate):
    make_guardrail(rolling_release, error_rate, consecutive_success_limit=2)
    start = timezone.now() - timedelta(hours=3)
    now = timezone.now()
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000, window_start=start))
    _cycle(now)
    ingest(sample_row(rolling_release, "error_rate", numerator=5, denominator=1000, window_start=start))
    _cycle(now + minutes(1))
    first = Incident.objects.get()
    assert first.status == IncidentStatus.TRIGGERED  # one pass is not enough
    assert _cycle(now + minutes(2)).evaluations == 0  # nor is a re-read of the same data
    ingest(sample_row(rolling_release, "error_rate", numerator=5, denominator=1000, window_start=_hour(2)))
    result = _cycle(now + minutes(3))
    first.refresh_from_db()
    assert result.incidents_resolved == 1
    assert (first.status, first.resolution) == (IncidentStatus.RESOLVED, Resolution.AUTO_RECOVERED)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000, window_start=start))
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000, window_start=_hour(2)))
    _cycle(now + minutes(4))
    second = Incident.objects.exclude(pk=first.pk).get()
    assert second.previous_incident == first
    assert second.status == IncidentStatus.TRIGGERED


def test_relative_guardrail_against_the_control_arm(rolling_release, csat):
    # CSAT, higher is better: treatment 70% vs control 85%, tolerance 3 points → fail.
    # A declared 50/50 split (the stage's percent is the default plan; these counts are an even holdout).
    make_guardrail(
        rolling_release,
        csat,
        absolute_threshold=None,
        relative_margin=0.03,
        min_sample_size=500,
        planned_treatment_share=0.5,
    )
    start = timezone.now() - timedelta(days=2)
    ingest(
        sample_row(rolling_release, "csat", numerator=1400, denominator=2000, window_start=start),
        sample_row(rolling_release, "csat", numerator=1700, denominator=2000, window_start=start, arm="control"),
    )
    _cycle(timezone.now())
    evaluation = Evaluation.objects.get(market="US")
    assert evaluation.baseline_source == BaselineSource.CONTROL
    assert evaluation.baseline == pytest.approx(0.85)
    assert evaluation.outcome == Outcome.FAIL
    assert evaluation.difference_upper < -0.03


def test_relative_guardrail_falls_back_to_the_previous_verified_release(
    author, solution, program_manager, no_default_guardrails, csat
):
    previous = make_release(author=author, solution=solution)
    previous = advance_release(previous, ReleaseStatus.VERIFIED, program_manager=program_manager)
    current = put_live(
        make_release(author=author, solution=solution), program_manager=program_manager, stage_age=PHASE_AGE
    )
    make_guardrail(current, csat, absolute_threshold=None, relative_margin=0.03, min_sample_size=500)
    start = timezone.now() - timedelta(days=2)
    ingest(
        # Twice the sample of the fixed-level days: each of the K = 2 sequences (1 guardrail × 2 markets) now
        # has α/2, so the same 1-point difference needs more data to pass a 3-point margin.
        sample_row(previous, "csat", numerator=3280, denominator=4000, window_start=start),
        sample_row(current, "csat", numerator=3320, denominator=4000, window_start=start),
    )
    _cycle(timezone.now())
    evaluation = Evaluation.objects.get(release=current, market="US")
    assert evaluation.baseline_source == BaselineSource.PREVIOUS_RELEASE
    assert evaluation.outcome == Outcome.PASS


def test_provisional_windows_are_not_evaluated(rolling_release, csat):
    # CSAT matures for 24 h: a bad window from two hours ago must not fire yet.
    make_guardrail(rolling_release, csat, absolute_threshold=0.7, min_sample_size=100)
    ingest(sample_row(rolling_release, "csat", numerator=100, denominator=1000))
    _cycle(timezone.now())
    assert Evaluation.objects.get(market="US").outcome == Outcome.INSUFFICIENT_DATA
    assert not Incident.objects.exists()


def test_gauge_guardrail(rolling_release):
    latency = MetricDefinition.objects.get(key="latency_p95_ms")
    make_guardrail(rolling_release, latency, absolute_threshold=2000, min_sample_size=1)
    row = sample_row(rolling_release, "latency_p95_ms", numerator=0, denominator=0, value=3500.0)
    del row["numerator"], row["denominator"]
    ingest(row)
    _cycle(timezone.now())
    evaluation = Evaluation.objects.get(market="US")
    assert (evaluation.outcome, evaluation.observed) == (Outcome.FAIL, 3500.0)


def test_defaults_per_risk_level_are_inherited(author, solution, error_rate):
    release = put_live(make_release(author=author, solution=solution, risk_level="critical"), stage_age=PHASE_AGE)
    ingest(sample_row(release, "error_rate", numerator=300, denominator=1000))
    _cycle(timezone.now())
    evaluation = Evaluation.objects.get(market="US", guardrail__metric=error_rate)
    assert evaluation.guardrail.risk_level == "critical"
    release.refresh_from_db()
    assert release.status == ReleaseStatus.ROLLED_BACK  # the critical default on error rate rolls back


def test_evaluation_batch_query_count_does_not_grow_with_releases(
    author, solution, no_default_guardrails, error_rate, django_assert_max_num_queries
):
    releases = []
    for _ in range(12):
        # One solution cannot roll out twice in the same markets, so each release is its own solution's.
        release = put_live(make_release(author=author, solution=SolutionFactory()), stage_age=PHASE_AGE)
        make_guardrail(release, error_rate)
        releases.append(release)
    ingest(*[sample_row(r, "error_rate", numerator=1, denominator=1000, market=m) for r in releases for m in ("US",)])
    # 14, constant in releases: the previous-verified-release lookup always runs (it decides whether a release
    # is its solution's first, judged on absolute bounds when it has no control arm), and the releases are read
    # again under their locks (the cycle's reads are taken before locking; a phase changed since is skipped).
    with django_assert_max_num_queries(14):
        result = _cycle(timezone.now())
    assert result.evaluations == 24 and result.outcomes[Outcome.PASS] == 12


def test_an_interrupted_cycle_leaves_nothing_half_done_and_the_next_one_completes(
    rolling_release, error_rate, monkeypatch
):
    make_guardrail(rolling_release, error_rate)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    now = timezone.now()

    def killed(**kwargs):
        raise SystemExit("worker killed")

    monkeypatch.setattr("monitoring.services.evaluation.incident_trigger", killed)
    with pytest.raises(SystemExit):
        _cycle(now)
    assert not Evaluation.objects.exists() and not Incident.objects.exists()
    monkeypatch.undo()
    _cycle(now)
    assert Evaluation.objects.count() == 2 and Incident.objects.count() == 1


def test_a_missed_action_is_taken_by_the_next_cycle(rolling_release, error_rate, monkeypatch):
    make_guardrail(rolling_release, error_rate, action=GuardrailAction.PAUSE)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    now = timezone.now()
    # Killed after the batch committed, before the pause: the incident exists, the release still rolls out.
    monkeypatch.setattr("monitoring.services.evaluation.guardrail_action_apply", lambda **kw: 0)
    _cycle(now)
    rolling_release.refresh_from_db()
    assert rolling_release.status == ReleaseStatus.ROLLING_OUT
    monkeypatch.undo()
    # The next failing look (new data) acts.
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000, window_start=_hour(3)))
    _cycle(now + minutes(1))
    rolling_release.refresh_from_db()
    assert rolling_release.status == ReleaseStatus.PAUSED
    assert Incident.objects.count() == 1


def test_manual_resolve_then_failure_opens_a_linked_incident(rolling_release, error_rate, oncall):
    make_guardrail(rolling_release, error_rate)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    now = timezone.now()
    _cycle(now)
    first = Incident.objects.get()
    incident_resolve(incident=first, actor=oncall, resolution=Resolution.FIXED, note="config fixed")
    assert _cycle(now + minutes(1)).evaluations == 0  # no new data: the resolution stands
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000, window_start=_hour(3)))
    _cycle(now + minutes(2))
    second = Incident.objects.get(status=IncidentStatus.TRIGGERED)
    assert second.previous_incident_id == first.pk


def test_one_releases_poisoned_samples_are_its_error_and_the_other_release_still_gets_its_incident(
    author, no_default_guardrails, error_rate, caplog
):
    poisoned = put_live(make_release(author=author, solution=SolutionFactory()), stage_age=PHASE_AGE)
    breaching = put_live(make_release(author=author, solution=SolutionFactory()), stage_age=PHASE_AGE)
    # Ingestion bounds counts and sums by the definition's range; poison that got in anyway (a definition without
    # an upper bound, rows from before the bounds) must still be only its release's problem.
    MetricDefinition.objects.filter(key="error_rate").update(max_value=None)
    make_guardrail(poisoned, error_rate)
    make_guardrail(breaching, error_rate)
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    # A first look before any data: the error look below must not hide behind this look's (empty) identity.
    _cycle(timezone.now() - minutes(1))
    assert set(Evaluation.objects.values_list("reason", flat=True)) == {"no_complete_window"}
    poison = {"units": 500, "sum_x": 10, "sum_y": 1000, "sum_xx": 1e308, "sum_yy": 1e308, "sum_xy": 1e308}
    # Two windows of 1e308 sums: each is a finite float, their sum overflows PostgreSQL's double precision.
    ingest(
        *[
            sample_row(poisoned, "error_rate", numerator=10, denominator=1000, window_start=hour - minutes(m), **poison)
            for m in (180, 120)
        ],
        sample_row(breaching, "error_rate", numerator=300, denominator=1000),
    )
    result = _cycle(timezone.now())
    # The market that received the poison is in error (its release's samples could not even be added up); DE got
    # no new data, so it has no new look...
    poisoned_looks = Evaluation.objects.filter(release=poisoned).exclude(reason="no_complete_window")
    assert {e.market for e in poisoned_looks} == {"US"}
    assert all(e.outcome == Outcome.ERROR and "overflow" in e.detail for e in poisoned_looks)
    assert not Incident.objects.filter(release=poisoned).exists()
    # ...and the other release was judged in the same batch and got its incident.
    assert Evaluation.objects.filter(release=breaching, market="US").latest("id").outcome == Outcome.FAIL
    assert Incident.objects.get().release_id == breaching.pk
    assert result.errors == 1 and result.incidents_opened == 1
    assert "could not be evaluated" in caplog.text


def test_a_1e308_gauge_value_is_judged_without_overflowing_anything(author, no_default_guardrails, error_rate):
    # Gauges are no longer averaged (an average of percentiles is no percentile): the latest window is compared
    # with the bound, so 1e308 is simply far over it — that release's failure, and the other release is judged.
    poisoned = put_live(make_release(author=author, solution=SolutionFactory()), stage_age=PHASE_AGE)
    other = put_live(make_release(author=author, solution=SolutionFactory()), stage_age=PHASE_AGE)
    MetricDefinition.objects.filter(key="latency_p95_ms").update(max_value=None)
    latency = MetricDefinition.objects.get(key="latency_p95_ms")
    make_guardrail(poisoned, latency, absolute_threshold=2000, min_sample_size=2)
    make_guardrail(other, error_rate)
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    rows = []
    for m in (180, 120):
        row = sample_row(
            poisoned, "latency_p95_ms", numerator=0, denominator=0, value=1e308, window_start=hour - minutes(m)
        )
        del row["numerator"], row["denominator"]
        rows.append(row)
    ingest(*rows, sample_row(other, "error_rate", numerator=300, denominator=1000))
    _cycle(timezone.now())
    gauge = Evaluation.objects.get(release=poisoned, market="US")
    assert (gauge.outcome, gauge.n, gauge.variance_method) == (Outcome.FAIL, 2, "none")
    assert Incident.objects.filter(release=other).count() == 1


def test_manual_resolve_then_recovery_opens_nothing_and_resolves_nothing(rolling_release, error_rate, oncall):
    # README, "Manual resolve and recovery": a person's resolution leaves the counters; passing looks recover the
    # guardrail without reopening, and a recovery with no open incident has nothing to resolve.
    make_guardrail(rolling_release, error_rate, consecutive_success_limit=2)
    now = timezone.now()
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000, window_start=_hour(5)))
    _cycle(now)
    incident_resolve(incident=Incident.objects.get(), actor=oncall, resolution=Resolution.FIXED, note="hotfix")
    counters = []
    for look, hours_ago in enumerate((4, 3, 2)):
        ingest(sample_row(rolling_release, "error_rate", numerator=0, denominator=5000, window_start=_hour(hours_ago)))
        result = _cycle(now + minutes(look + 1))
        assert result.incidents_opened == result.incidents_resolved == 0
        us = Evaluation.objects.filter(market="US").order_by("-id").first()
        counters.append((us.outcome, us.consecutive_passes, us.breached))
    assert counters[0][2] is True  # still breached after the person's resolution
    assert counters[-1][2] is False and counters[-1][0] == Outcome.PASS
    assert Incident.objects.count() == 1 and Incident.objects.get().resolution == Resolution.FIXED
