"""The numbers guardrails rest on, checked against scipy and against METRICS.md. No database needed."""

import math

import numpy as np
import pytest
from scipy.stats import binomtest, norm

from monitoring import statistics as st


@pytest.mark.parametrize(
    ("x", "n", "confidence"),
    [(0, 20, 0.95), (18, 20, 0.95), (1, 7, 0.9), (55, 1000, 0.95), (412, 500, 0.99), (3, 3, 0.95), (250, 500, 0.8)],
)
def test_wilson_matches_scipy(x, n, confidence):
    expected = binomtest(x, n).proportion_ci(confidence_level=confidence, method="wilson")
    got = st.wilson_interval(x, n, confidence)
    assert got.lower == pytest.approx(expected.low, abs=1e-12)
    assert got.upper == pytest.approx(expected.high, abs=1e-12)
    assert got.estimate == pytest.approx(x / n)
    assert got.n == n


def test_wilson_metrics_md_checks():
    zero = st.wilson_interval(0, 20)
    assert (round(zero.lower, 3), round(zero.upper, 3)) == (0.0, 0.161)
    high = st.wilson_interval(18, 20)
    assert (round(high.lower, 3), round(high.upper, 3)) == (0.699, 0.972)


def test_wilson_without_observations_knows_nothing():
    assert st.wilson_interval(0, 0) == st.Interval(estimate=0.0, lower=0.0, upper=1.0, n=0)


@pytest.mark.parametrize(("x", "n"), [(-1, 10), (11, 10), (0, -1)])
def test_wilson_rejects_impossible_counts(x, n):
    with pytest.raises(ValueError):
        st.wilson_interval(x, n)


@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99])
def test_quantiles_match_scipy(confidence):
    assert st.z_two_sided(confidence) == pytest.approx(norm.ppf(1 - (1 - confidence) / 2), abs=1e-9)
    assert st.z_one_sided(1 - confidence) == pytest.approx(norm.ppf(confidence), abs=1e-9)


def _newcombe_from_scipy(x2, n2, x1, n1, confidence):
    # Δ = p2 - p1 with Wilson bounds from scipy: the hybrid score formula of METRICS.md.
    w2 = binomtest(x2, n2).proportion_ci(confidence_level=confidence, method="wilson")
    w1 = binomtest(x1, n1).proportion_ci(confidence_level=confidence, method="wilson")
    p2, p1 = x2 / n2, x1 / n1
    delta = p2 - p1
    return (
        delta - math.sqrt((p2 - w2.low) ** 2 + (w1.high - p1) ** 2),
        delta + math.sqrt((w2.high - p2) ** 2 + (p1 - w1.low) ** 2),
    )


@pytest.mark.parametrize(("x2", "n2", "x1", "n1"), [(56, 70, 48, 80), (9, 10, 3, 10), (600, 1000, 550, 1000)])
def test_newcombe_matches_scipy_based_formula(x2, n2, x1, n1):
    low, high = _newcombe_from_scipy(x2, n2, x1, n1, 0.95)
    got = st.newcombe_difference_interval(x2, n2, x1, n1, 0.95)
    assert got.lower == pytest.approx(low, abs=1e-12)
    assert got.upper == pytest.approx(high, abs=1e-12)
    assert got.estimate == pytest.approx(x2 / n2 - x1 / n1)
    assert got.n == n1 + n2


def test_newcombe_published_example():
    # Newcombe (1998), example (a): 56/70 vs 48/80 → Δ = 0.2, 95% interval [0.0524, 0.3339].
    got = st.newcombe_difference_interval(56, 70, 48, 80, 0.95)
    assert round(got.lower, 4) == 0.0524
    assert round(got.upper, 4) == 0.3339


def test_two_proportion_z_matches_hand_computation_and_scipy_tail():
    # Higher is better, δ = 2 points: z = (0.55 - 0.60 + 0.02) / √(0.6·0.4/1000 + 0.55·0.45/1000).
    z = st.two_proportion_z(550, 1000, 600, 1000, margin=0.02, direction=st.HIGHER)
    expected = (0.55 - 0.60 + 0.02) / math.sqrt(0.6 * 0.4 / 1000 + 0.55 * 0.45 / 1000)
    assert z == pytest.approx(expected)
    # p-value of harm beyond δ: 8.7%, not significant at 5% → pass; without tolerance it is a fail.
    assert norm.cdf(z) == pytest.approx(0.0871, abs=1e-3)
    assert st.two_proportion_z_verdict(550, 1000, 600, 1000, margin=0.02, direction=st.HIGHER) == st.PASS
    assert st.two_proportion_z_verdict(550, 1000, 600, 1000, margin=0.0, direction=st.HIGHER) == st.FAIL


def test_two_proportion_z_lower_is_better_flips_the_sign():
    # Escalation went from 20% to 25%: harm for a lower-is-better metric.
    z = st.two_proportion_z(250, 1000, 200, 1000, margin=0.01, direction=st.LOWER)
    assert z == pytest.approx((0.25 - 0.20 - 0.01) / math.sqrt(0.2 * 0.8 / 1000 + 0.25 * 0.75 / 1000))
    assert st.two_proportion_z_verdict(250, 1000, 200, 1000, margin=0.01, direction=st.LOWER) == st.FAIL
    assert st.two_proportion_z_verdict(200, 1000, 250, 1000, margin=0.01, direction=st.LOWER) == st.PASS


@pytest.mark.parametrize(
    ("p1", "p2", "expected"),
    [(0.60, 0.55, 1208), (0.60, 0.57, 3335), (0.80, 0.75, 862), (0.20, 0.25, 862), (0.05, 0.06, 6426)],
)
def test_min_sample_size_metrics_md(p1, p2, expected):
    assert st.min_sample_size_per_arm(p1, p2, alpha=0.05, power=0.8) == expected


def test_confidence_sequence_half_width_formula():
    alpha, tuning_n, n, sigma = 0.05, 1000, 2500, 0.5
    rho = math.sqrt((-2 * math.log(alpha) + math.log(-2 * math.log(alpha) + 1)) / tuning_n)
    assert st.confidence_sequence_rho(tuning_n=tuning_n, alpha=alpha) == pytest.approx(rho)
    expected = sigma * math.sqrt(2 * (n * rho**2 + 1) * math.log(math.sqrt(n * rho**2 + 1) / alpha) / (n * rho) ** 2)
    assert st.confidence_sequence_half_width(n=n, sigma=sigma, alpha=alpha, tuning_n=tuning_n) == pytest.approx(
        expected
    )


def test_confidence_sequence_is_wider_than_fixed_horizon_and_shrinks():
    fixed = st.z_two_sided(0.95) * 0.5 / math.sqrt(1000)
    widths = [st.confidence_sequence_half_width(n=n, sigma=0.5, alpha=0.05, tuning_n=1000) for n in (100, 1000, 10000)]
    assert widths[1] > fixed  # paying for looking at every n
    assert widths[0] > widths[1] > widths[2]


def test_sequential_rate_interval_contains_the_estimate_and_never_claims_certainty():
    interval = st.sequential_rate_interval(0, 500, confidence=0.95, tuning_n=500)
    assert interval.lower == 0.0
    assert interval.upper > 0.0  # 0/500 is not proof the rate is 0
    interval = st.sequential_rate_interval(40, 500, confidence=0.95, tuning_n=500)
    assert interval.lower < 0.08 < interval.upper


def test_absolute_verdict_lower_is_better_with_hysteresis():
    # "fallback below 8%"
    assert st.absolute_verdict(st.Interval(0.12, 0.09, 0.15, 1000), threshold=0.08, direction=st.LOWER) == st.FAIL
    assert st.absolute_verdict(st.Interval(0.03, 0.02, 0.05, 1000), threshold=0.08, direction=st.LOWER) == st.PASS
    assert (
        st.absolute_verdict(st.Interval(0.07, 0.05, 0.09, 1000), threshold=0.08, direction=st.LOWER) == st.INCONCLUSIVE
    )


def test_absolute_verdict_higher_is_better():
    # "CSAT at least 70%"
    assert st.absolute_verdict(st.Interval(0.6, 0.55, 0.65, 500), threshold=0.7, direction=st.HIGHER) == st.FAIL
    assert st.absolute_verdict(st.Interval(0.8, 0.75, 0.85, 500), threshold=0.7, direction=st.HIGHER) == st.PASS
    assert st.absolute_verdict(st.Interval(0.7, 0.65, 0.75, 500), threshold=0.7, direction=st.HIGHER) == st.INCONCLUSIVE


def test_relative_verdict_direction_aware():
    harm_higher = st.Interval(-0.06, -0.09, -0.03, 2000)
    assert st.relative_verdict(harm_higher, margin=0.02, direction=st.HIGHER) == st.FAIL
    assert st.relative_verdict(harm_higher, margin=0.10, direction=st.HIGHER) == st.PASS
    # The same interval is an improvement when lower is better.
    assert st.relative_verdict(harm_higher, margin=0.02, direction=st.LOWER) == st.PASS
    assert st.relative_verdict(st.Interval(0.01, -0.01, 0.03, 2000), margin=0.02, direction=st.LOWER) == (
        st.INCONCLUSIVE
    )
    with pytest.raises(ValueError):
        st.relative_verdict(harm_higher, margin=0.02, direction="sideways")


def test_worst_outcome_order():
    assert st.worst_outcome(st.PASS, st.INSUFFICIENT_DATA) == st.INSUFFICIENT_DATA
    assert st.worst_outcome(st.INCONCLUSIVE, st.ERROR, st.PASS) == st.ERROR
    assert st.worst_outcome(st.ERROR, st.FAIL) == st.FAIL


def _aa_false_alarm_rates(experiments=400, looks=30, per_look=100, rate=0.3, seed=20261125):
    """An A/A test: both arms share one true rate, so every fail is a false alarm."""
    rng = np.random.default_rng(seed)
    final_total = 2 * per_look * looks
    sequential_alarms = naive_alarms = 0
    for _ in range(experiments):
        treatment = rng.binomial(per_look, rate, looks).cumsum()
        control = rng.binomial(per_look, rate, looks).cumsum()
        sequential_fired = naive_fired = False
        for look in range(looks):
            n = per_look * (look + 1)
            x_new, x_base = int(treatment[look]), int(control[look])
            difference = st.sequential_difference_interval(
                x_new, n, x_base, n, confidence=0.95, tuning_n=final_total // 2
            )
            sequential_fired |= st.relative_verdict(difference, margin=0.0, direction=st.HIGHER) == st.FAIL
            # Naive: the fixed-horizon two-sided z-test at 5%, repeated at every look.
            z = st.two_proportion_z(x_new, n, x_base, n, margin=0.0, direction=st.HIGHER)
            naive_fired |= abs(z) > st.z_two_sided(0.95)
        sequential_alarms += sequential_fired
        naive_alarms += naive_fired
    return sequential_alarms / experiments, naive_alarms / experiments


def test_aa_simulation_sequential_keeps_false_alarms_low_while_naive_peeking_does_not():
    sequential, naive = _aa_false_alarm_rates()
    assert sequential <= 0.02
    assert naive > 0.10
