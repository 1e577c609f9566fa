"""Cohorts, units, SRM, the α split, the source of record and the readout (issue 9)."""

from __future__ import annotations

import random
from datetime import timedelta

import numpy as np
import pytest
from django.utils import timezone

from monitoring import statistics as st
from monitoring.choices import IncidentKind, Outcome, Severity
from monitoring.judging import TURN, Rule, Totals, judge
from monitoring.models import Evaluation, Incident, MetricDefinition
from monitoring.services import guardrails_evaluate
from monitoring.services.rollout import release_guardrail_status
from releases.choices import ReleaseStatus
from tests.conftest import api_as

from .conftest import ingest, make_guardrail, sample_row

# --- the delta method, pure -------------------------------------------------------------------------------------


def _conversations(rng: random.Random, k: int, turns: int, p: float, icc: float) -> list[tuple[int, int]]:
    # Beta-binomial turns: each conversation has its own error probability (intra-conversation correlation icc).
    a, b = p * (1 - icc) / icc, (1 - p) * (1 - icc) / icc
    out = []
    for _ in range(k):
        q = rng.betavariate(a, b)
        out.append((sum(rng.random() < q for _ in range(turns)), turns))
    return out


def _add(totals: Totals, conversations: list[tuple[int, int]]) -> None:
    for x, y in conversations:
        totals.numerator += x
        totals.denominator += y
        totals.units += 1
        totals.sum_x += x
        totals.sum_y += y
        totals.sum_xx += x * x
        totals.sum_yy += y * y
        totals.sum_xy += x * y
    totals.windows += 1
    totals.windows_with_sums += 1


def test_delta_method_variance_matches_the_formula_on_raw_data():
    rng = random.Random(3)
    data = _conversations(rng, 400, 5, 0.1, 0.3) + _conversations(rng, 100, 2, 0.1, 0.3)
    x = np.array([c[0] for c in data], dtype=float)
    y = np.array([c[1] for c in data], dtype=float)
    k = len(data)
    expected = (
        x.var(ddof=1) / y.mean() ** 2
        - 2 * x.mean() * np.cov(x, y, ddof=1)[0, 1] / y.mean() ** 3
        + x.mean() ** 2 * y.var(ddof=1) / y.mean() ** 4
    ) / k
    got = st.delta_method_ratio_variance(
        units=k,
        sum_x=x.sum(),
        sum_y=y.sum(),
        sum_xx=(x * x).sum(),
        sum_yy=(y * y).sum(),
        sum_xy=(x * y).sum(),
    )
    assert got == pytest.approx(expected, rel=1e-9)
    # Clustering makes it larger than the binomial variance of the turns.
    assert got > st.binomial_ratio_variance(int(x.sum()), int(y.sum()))


def _aa_false_alarms(*, releases: int, looks: int, per_look: int, unit: str, seed: int = 7) -> float:
    rng = random.Random(seed)
    rule = Rule(
        kind="rate", direction=st.LOWER, absolute_threshold=None, relative_margin=0.0, min_sample_size=100,
        confidence=0.95, tuning_n=2000, unit=unit,
    )  # fmt: skip
    alarms = 0
    for _ in range(releases):
        treatment, control = Totals(), Totals()
        for _look in range(looks):
            _add(treatment, _conversations(rng, per_look, 5, 0.05, 0.3))
            _add(control, _conversations(rng, per_look, 5, 0.05, 0.3))
            if judge(rule, treatment, control, baseline_is_control=True).outcome == Outcome.FAIL:
                alarms += 1
                break
    return alarms / releases


def test_clustered_aa_stays_within_two_percent_with_the_sums_and_not_without():
    # A/A, 5 turns per conversation at intra-conversation correlation 0.3, 30 looks at a growing cohort.
    with_sums = _aa_false_alarms(releases=200, looks=30, per_look=40, unit=TURN)
    as_independent_turns = _aa_false_alarms(releases=200, looks=30, per_look=40, unit="conversation")
    assert with_sums <= 0.02
    assert as_independent_turns > 0.02  # the same data read as independent turns alarms falsely


def test_a_turn_level_rate_without_sums_uses_the_declared_design_effect():
    rule = Rule(
        kind="rate", direction=st.LOWER, absolute_threshold=0.05, relative_margin=None, min_sample_size=100,
        confidence=0.95, tuning_n=1000, unit=TURN, design_effect=2.2,
    )  # fmt: skip
    plain = judge(
        Rule(**{**rule.__dict__, "design_effect": 1.0}), Totals(numerator=40, denominator=1000, windows=1), None
    )
    inflated = judge(rule, Totals(numerator=40, denominator=1000, windows=1), None)
    assert inflated.variance_method == "design_effect"
    assert inflated.upper - inflated.lower == pytest.approx((plain.upper - plain.lower) * 2.2**0.5, rel=1e-6)


# --- SRM, pure --------------------------------------------------------------------------------------------------


def test_srm_flags_ten_thousand_against_six_hundred_and_not_an_even_split():
    assert st.sample_ratio_mismatch(10_000, 600, treatment_share=0.5)
    assert not st.sample_ratio_mismatch(5_050, 4_950, treatment_share=0.5)
    assert not st.sample_ratio_mismatch(1_000, 9_000, treatment_share=0.1)


def test_srm_is_valid_at_every_look():
    rng = random.Random(11)
    alarms = 0
    for _ in range(300):
        treatment = control = 0
        for _look in range(60):
            for _ in range(40):
                if rng.random() < 0.3:
                    treatment += 1
                else:
                    control += 1
            if st.sample_ratio_mismatch(treatment, control, treatment_share=0.3):
                alarms += 1
                break
    assert alarms / 300 <= st.SRM_ALPHA * 5  # at most a few in 300 at α = 0.001


def test_bonferroni_splits_alpha():
    assert st.bonferroni_confidence(0.95, 10) == pytest.approx(0.995)
    assert st.bonferroni_confidence(0.95, 1) == pytest.approx(0.95)


# --- through the service ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_srm_on_ten_thousand_vs_six_hundred_makes_relative_verdicts_inconclusive_and_opens_a_data_incident(
    rolling_release, csat
):
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
        sample_row(rolling_release, "csat", numerator=8000, denominator=10_000, window_start=start),
        sample_row(rolling_release, "csat", numerator=480, denominator=600, window_start=start, arm="control"),
    )
    guardrails_evaluate(now=timezone.now())
    us = Evaluation.objects.get(market="US")
    assert (us.outcome, us.reason, us.sample_ratio_mismatch) == (
        Outcome.INCONCLUSIVE,
        "sample_ratio_mismatch",
        True,
    )
    incident = Incident.objects.get()
    assert (incident.kind, incident.severity) == (IncidentKind.DATA_QUALITY, Severity.SEV4)
    rolling_release.refresh_from_db()
    assert rolling_release.status == ReleaseStatus.ROLLING_OUT  # no release action
    status = release_guardrail_status(release=rolling_release)
    assert status.open_incidents == [] and any("inconclusive" in label for label in status.not_passing)
    assert status.data_quality_incidents == [incident.pk]  # shown with the release's guardrail status
    # A later look that still mismatches does not open a second one.
    ingest(
        sample_row(rolling_release, "csat", numerator=8000, denominator=10_000, window_start=start + timedelta(hours=1))
    )
    guardrails_evaluate(now=timezone.now() + timedelta(minutes=1))
    assert Incident.objects.count() == 1


@pytest.mark.django_db
def test_release_level_alpha_is_split_and_shown(rolling_release, error_rate, csat):
    make_guardrail(rolling_release, error_rate)
    make_guardrail(rolling_release, csat, absolute_threshold=0.6, bonferroni=False)
    ingest(sample_row(rolling_release, "error_rate", numerator=1, denominator=1000))
    guardrails_evaluate(now=timezone.now())
    split = Evaluation.objects.filter(guardrail__metric=error_rate, market="US").get()
    # K = 1 guardrail sharing α × 2 markets: α/2 each; the opted-out guardrail keeps its whole α.
    assert (split.sequences, split.confidence) == (2, pytest.approx(0.975))
    own = Evaluation.objects.filter(guardrail__metric=csat, market="US").get()
    assert (own.sequences, own.confidence) == (1, pytest.approx(0.95))


@pytest.mark.django_db
def test_only_the_source_of_record_is_judged_and_others_are_discrepancies(rolling_release, error_rate, auditor):
    make_guardrail(rolling_release, error_rate)
    ingest(
        sample_row(rolling_release, "error_rate", numerator=1, denominator=1000),
        sample_row(rolling_release, "error_rate", numerator=1, denominator=1000, source="warehouse"),
    )
    guardrails_evaluate(now=timezone.now())
    us = Evaluation.objects.get(market="US")
    assert (us.n, us.samples) == (1000, 1)  # not 2000: the warehouse's copy is not summed
    readout = api_as(auditor).get(f"/api/v1/releases/{rolling_release.pk}/readout/").json()
    row = next(m for m in readout["markets"] if m["market"] == "US")["metrics"][0]
    assert row["metric"] == "error_rate" and row["treatment"]["denominator"] == 1000
    assert row["discrepancies"] == [
        {"source": "warehouse", "arm": "treatment", "numerator": 1, "denominator": 1000, "rate": 0.001,
         "windows": 1, "units": None}
    ]  # fmt: skip


@pytest.mark.django_db
def test_a_first_release_without_control_is_judged_on_its_absolute_bound(rolling_release, csat):
    # The seeded relative defaults now carry an absolute floor; without any baseline the floor judges.
    make_guardrail(rolling_release, csat, absolute_threshold=0.7, relative_margin=0.03, min_sample_size=500)
    ingest(
        sample_row(
            rolling_release, "csat", numerator=1800, denominator=2000, window_start=timezone.now() - timedelta(days=2)
        )
    )
    guardrails_evaluate(now=timezone.now())
    us = Evaluation.objects.get(market="US")
    assert (us.outcome, us.reason) == (Outcome.PASS, "no_control_arm")
    de = Evaluation.objects.get(market="DE")
    assert de.outcome == Outcome.INSUFFICIENT_DATA and de.reason == "no_complete_window"


@pytest.mark.django_db
def test_insufficient_data_says_how_far_along_it_is(rolling_release, error_rate):
    make_guardrail(rolling_release, error_rate, min_sample_size=500)
    ingest(sample_row(rolling_release, "error_rate", numerator=1, denominator=312))
    guardrails_evaluate(now=timezone.now())
    us = Evaluation.objects.get(market="US")
    assert (us.outcome, us.detail) == (Outcome.INSUFFICIENT_DATA, "312 of 500 in the sample so far")


@pytest.mark.django_db
def test_the_readout_compares_treatment_and_control_with_an_always_valid_interval(rolling_release, csat, auditor):
    make_guardrail(rolling_release, csat, absolute_threshold=None, relative_margin=0.03, planned_treatment_share=0.5)
    start = timezone.now() - timedelta(days=2)
    ingest(
        sample_row(rolling_release, "csat", numerator=1400, denominator=2000, window_start=start),
        sample_row(rolling_release, "csat", numerator=1700, denominator=2000, window_start=start, arm="control"),
    )
    guardrails_evaluate(now=timezone.now())
    response = api_as(auditor).get(f"/api/v1/releases/{rolling_release.pk}/readout/")
    assert response.status_code == 200
    us = next(m for m in response.json()["markets"] if m["market"] == "US")
    row = us["metrics"][0]
    assert row["metric"] == "csat" and row["difference"] == pytest.approx(-0.15)
    assert row["difference_lower"] < -0.15 < row["difference_upper"] < -0.03
    assert row["verdicts"][0]["outcome"] == Outcome.FAIL
    assert us["sample_ratio"]["checked"] is True and us["sample_ratio"]["mismatch"] is False  # 2000 vs 2000, 50/50
    assert api_as(auditor).get("/api/v1/releases/999999/readout/").status_code == 404


@pytest.mark.django_db
def test_slow_turn_rate_is_seeded_as_a_turn_level_rate_with_its_threshold():
    slow = MetricDefinition.objects.get(key="slow_turn_rate")
    assert (slow.kind, slow.unit_of_analysis, slow.slow_threshold_ms) == ("rate", TURN, 3000)
    assert MetricDefinition.objects.get(key="error_rate").unit_of_analysis == TURN


@pytest.mark.django_db
def test_each_ingest_enqueues_a_look_that_writes_at_once(
    rolling_release, error_rate, django_capture_on_commit_callbacks, monkeypatch
):
    # Was: the look keyed on floor(now, interval) was already taken, so the look ingestion enqueued wrote nothing
    # and the breach waited for the next interval. Now each ingest's data is a new look, judged by its task.
    from config.celery import app
    from monitoring.services import metric_samples_ingest

    monkeypatch.setitem(app.conf, "task_always_eager", True)
    make_guardrail(rolling_release, error_rate, failure_limit=1)
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    for look, hours_ago in enumerate((3, 2)):
        with django_capture_on_commit_callbacks(execute=True):
            metric_samples_ingest(
                rows=[
                    sample_row(
                        rolling_release,
                        "error_rate",
                        numerator=300,
                        denominator=1000,
                        window_start=hour - timedelta(hours=hours_ago),
                    )
                ]
            )
        assert Evaluation.objects.filter(market="US").count() == look + 1
    assert Incident.objects.get().release_id == rolling_release.pk  # the second failing look breached


@pytest.mark.django_db
def test_unit_sums_are_all_or_none_and_agree_with_the_counts(rolling_release):
    from monitoring.errors import InvalidRows
    from monitoring.services.ingestion import validate_samples

    good = {"units": 200, "sum_x": 30, "sum_y": 1000, "sum_xx": 50, "sum_yy": 5200, "sum_xy": 160}
    [sample] = validate_samples([sample_row(rolling_release, "error_rate", numerator=30, denominator=1000, **good)])
    assert (sample.units, sample.sum_xy) == (200, 160)
    with pytest.raises(InvalidRows) as bad:
        validate_samples(
            [
                sample_row(rolling_release, "error_rate", numerator=30, denominator=1000, units=200, sum_x=30),
                sample_row(rolling_release, "error_rate", numerator=31, denominator=1000, **good, market="DE"),
            ]
        )
    rows = {row["index"]: row["errors"] for row in bad.value.rows}
    assert "units" in rows[0] and "sum_x" in rows[1]


@pytest.mark.django_db
def test_the_split_is_tested_on_whole_traffic_not_on_a_subset_like_rated_conversations(rolling_release, csat):
    # The treatment may well be rated more often (a real effect on the response rate): CSAT's denominators are not
    # the split. The release and market's split comes from the metric counting the most conversations.
    escalation = MetricDefinition.objects.get(key="escalation_rate")
    for metric in (csat, escalation):
        make_guardrail(
            rolling_release,
            metric,
            absolute_threshold=None,
            relative_margin=0.05,
            min_sample_size=500,
            planned_treatment_share=0.5,
        )
    start = timezone.now() - timedelta(days=2)
    ingest(
        sample_row(rolling_release, "escalation_rate", numerator=2000, denominator=10_000, window_start=start),
        sample_row(
            rolling_release, "escalation_rate", numerator=2000, denominator=10_000, window_start=start, arm="control"
        ),
        sample_row(rolling_release, "csat", numerator=2400, denominator=3000, window_start=start),
        sample_row(rolling_release, "csat", numerator=1200, denominator=1500, window_start=start, arm="control"),
    )
    guardrails_evaluate(now=timezone.now())
    looks = Evaluation.objects.filter(market="US")
    assert {e.guardrail.metric.key: e.sample_ratio_mismatch for e in looks} == {"csat": False, "escalation_rate": False}
    assert {e.outcome for e in looks} == {Outcome.PASS}
    assert not Incident.objects.exists()
