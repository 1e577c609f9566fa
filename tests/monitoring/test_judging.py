"""The pure judging and counting rules (``monitoring/judging.py``): no database, no ORM."""

from __future__ import annotations

import math

import pytest

from monitoring import statistics as st
from monitoring.choices import Outcome
from monitoring.judging import Counters, Rule, Totals, judge, judge_safely, next_counters

RATE_LOWER = Rule(
    kind="rate",
    direction=st.LOWER,
    absolute_threshold=0.05,
    relative_margin=None,
    min_sample_size=100,
    confidence=0.95,
    tuning_n=200,
)

# --- counting semantics (pure) --------------------------------------------------------------------------------


def _run(outcomes, *, failure_limit, success_limit=3):
    state = Counters()
    breached = []
    for outcome in outcomes:
        state = next_counters(state, outcome, failure_limit=failure_limit, success_limit=success_limit)
        breached.append(state.breached)
    return breached


def test_failure_limit_three_breaches_on_the_fourth_failure():
    assert _run(["fail"] * 4, failure_limit=3) == [False, False, False, True]


def test_failure_limit_zero_breaches_on_the_first_failure_and_minus_one_never():
    assert _run(["fail"], failure_limit=0) == [True]
    assert _run(["fail"] * 50, failure_limit=-1) == [False] * 50


def test_failures_are_forgotten_only_after_consecutive_passes():
    # limit 1: fail, pass, pass, fail → the two passes are not 3 in a row, so the 2nd failure breaches.
    assert _run(["fail", "pass", "pass", "fail"], failure_limit=1) == [False, False, False, True]
    # Three passes in a row reset the count: the next failure is the first again.
    assert _run(["fail", "pass", "pass", "pass", "fail"], failure_limit=1) == [False] * 5


def test_recovery_needs_consecutive_passes_and_gaps_break_the_streak():
    seq = ["fail", "pass", "insufficient_data", "pass", "pass", "pass"]
    assert _run(seq, failure_limit=0) == [True, True, True, True, True, False]


def test_pipeline_errors_change_nothing():
    state = next_counters(Counters(1, 2, True), Outcome.ERROR, failure_limit=0, success_limit=3)
    assert state == Counters(1, 2, True)


# --- judging one cohort -----------------------------------------------------------------------------------------


def test_a_rate_far_over_its_bound_fails_and_far_under_passes():
    failing = judge(RATE_LOWER, Totals(numerator=300, denominator=1000), None)
    assert failing.outcome == Outcome.FAIL and failing.n == 1000 and failing.observed == pytest.approx(0.3)
    assert failing.lower is not None and failing.lower > 0.05
    passing = judge(RATE_LOWER, Totals(numerator=1, denominator=1000), None)
    assert passing.outcome == Outcome.PASS and passing.upper is not None and passing.upper <= 0.05


def test_below_the_minimum_sample_is_insufficient_data_never_fail():
    judgement = judge(RATE_LOWER, Totals(numerator=99, denominator=99), None)
    assert judgement.outcome == Outcome.INSUFFICIENT_DATA
    # The reason says what is missing in the person's terms.
    assert (judgement.reason, judgement.detail) == ("below_minimum_sample", "99 of 100 in the sample so far")


def test_relative_rule_without_a_baseline_is_insufficient_and_with_one_is_judged():
    relative = Rule(
        kind="rate", direction=st.HIGHER, absolute_threshold=None, relative_margin=0.02,
        min_sample_size=100, confidence=0.95, tuning_n=200,
    )  # fmt: skip
    alone = judge(relative, Totals(numerator=500, denominator=1000), None)
    assert alone.outcome == Outcome.INSUFFICIENT_DATA and alone.reason == "no_control_arm"
    assert "no control arm" in alone.detail
    worse = judge(relative, Totals(numerator=500, denominator=5000), Totals(numerator=4000, denominator=5000))
    assert worse.outcome == Outcome.FAIL and worse.baseline == pytest.approx(0.8) and worse.baseline_n == 5000
    assert worse.difference_upper is not None and worse.difference_upper < -0.02


def test_a_gauge_is_judged_on_its_value():
    gauge = Rule(
        kind="gauge", direction=st.LOWER, absolute_threshold=2000, relative_margin=None,
        min_sample_size=1, confidence=0.95, tuning_n=200,
    )  # fmt: skip
    assert judge(gauge, Totals(value=3500.0, windows=1), None).outcome == Outcome.FAIL
    assert judge(gauge, Totals(value=1200.0, windows=1), None).outcome == Outcome.PASS
    assert judge(gauge, Totals(value=None, windows=0), None).outcome == Outcome.INSUFFICIENT_DATA


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_a_non_finite_gauge_is_this_cohorts_error(value):
    gauge = Rule(
        kind="gauge", direction=st.LOWER, absolute_threshold=2000, relative_margin=None,
        min_sample_size=1, confidence=0.95, tuning_n=200,
    )  # fmt: skip
    judgement = judge_safely(gauge, Totals(value=value, windows=1), None)
    assert judgement.outcome == Outcome.ERROR and "ArithmeticError" in judgement.detail


def test_any_exception_while_judging_is_an_error_outcome_not_a_crash():
    # A gauge guardrail without a bound cannot be judged: the cohort is in error, nothing is raised.
    gauge = Rule(
        kind="gauge", direction=st.LOWER, absolute_threshold=None, relative_margin=None,
        min_sample_size=1, confidence=0.95, tuning_n=200,
    )  # fmt: skip
    judgement = judge_safely(gauge, Totals(value=10.0, windows=1), None)
    assert judgement.outcome == Outcome.ERROR and judgement.detail.startswith("ValueError")
    with pytest.raises(ValueError):
        judge(gauge, Totals(value=10.0, windows=1), None)
