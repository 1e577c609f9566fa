"""Intervals and tests for guardrails on rates — pure functions, no Django.

Formulas and their checks are in ``/work/shared/METRICS.md`` and ``monitoring/README.md``. Everything here uses
``statistics.NormalDist`` only; the tests cross-check the numbers against scipy.

Conventions:

* ``confidence`` is two-sided (0.95 → z = 1.96); ``alpha = 1 - confidence``.
* a *difference* is always ``new - baseline``.
* ``direction`` is ``"higher"`` when a higher value of the metric is better (CSAT, containment), ``"lower"`` when
  a lower one is (escalation, fallback, errors).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

HIGHER = "higher"
LOWER = "lower"

PASS = "pass"  # noqa: S105 - an outcome, not a password
FAIL = "fail"
INCONCLUSIVE = "inconclusive"
INSUFFICIENT_DATA = "insufficient_data"
ERROR = "error"

_NORMAL = NormalDist()


@dataclass(frozen=True)
class Interval:
    """A point estimate with its interval; ``n`` is the number of observations it rests on."""

    estimate: float
    lower: float
    upper: float
    n: int


def z_two_sided(confidence: float) -> float:
    _check_confidence(confidence)
    return _NORMAL.inv_cdf(1 - (1 - confidence) / 2)


def z_one_sided(alpha: float) -> float:
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    return _NORMAL.inv_cdf(1 - alpha)


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError("confidence must be in (0, 1)")


def _check_counts(x: int, n: int) -> None:
    if n < 0 or x < 0 or x > n:
        raise ValueError(f"need 0 <= x <= n, got x={x}, n={n}")


def wilson_interval(x: int, n: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for x successes out of n. With n = 0 nothing is known: [0, 1]."""
    _check_counts(x, n)
    if n == 0:
        return Interval(estimate=0.0, lower=0.0, upper=1.0, n=0)
    z = z_two_sided(confidence)
    p = x / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    denominator = 1 + z2 / n
    lower = max(0.0, (centre - spread) / denominator)
    upper = min(1.0, (centre + spread) / denominator)
    return Interval(estimate=p, lower=lower, upper=upper, n=n)


def newcombe_difference_interval(
    x_new: int, n_new: int, x_base: int, n_base: int, confidence: float = 0.95
) -> Interval:
    """Newcombe's hybrid score interval for Δ = p_new - p_base, built from the two Wilson intervals."""
    new = wilson_interval(x_new, n_new, confidence)
    base = wilson_interval(x_base, n_base, confidence)
    delta = new.estimate - base.estimate
    lower = delta - math.sqrt((new.estimate - new.lower) ** 2 + (base.upper - base.estimate) ** 2)
    upper = delta + math.sqrt((new.upper - new.estimate) ** 2 + (base.estimate - base.lower) ** 2)
    return Interval(estimate=delta, lower=max(-1.0, lower), upper=min(1.0, upper), n=n_new + n_base)


def two_proportion_z(x_new: int, n_new: int, x_base: int, n_base: int, *, margin: float, direction: str) -> float:
    """Unpooled z for "the new rate is not worse than the baseline by more than ``margin``".

    Higher is better: harm means p_new - p_base < -δ, z = (Δ̂ + δ) / SE, harm shown when z < -z_(1-alpha).
    Lower is better: harm means Δ > δ, z = (Δ̂ - δ) / SE, harm shown when z > z_(1-alpha).
    """
    _check_counts(x_new, n_new)
    _check_counts(x_base, n_base)
    if n_new == 0 or n_base == 0:
        raise ValueError("both arms need observations")
    p_new, p_base = x_new / n_new, x_base / n_base
    se = math.sqrt(p_base * (1 - p_base) / n_base + p_new * (1 - p_new) / n_new)
    shift = margin if direction == HIGHER else -margin
    numerator = p_new - p_base + shift
    if se == 0:
        return 0.0 if numerator == 0 else math.copysign(math.inf, numerator)
    return numerator / se


def two_proportion_z_verdict(
    x_new: int, n_new: int, x_base: int, n_base: int, *, margin: float, direction: str, alpha: float = 0.05
) -> str:
    """Fixed-horizon one-sided test: ``fail`` when harm beyond the margin is shown at level alpha, else ``pass``."""
    z = two_proportion_z(x_new, n_new, x_base, n_base, margin=margin, direction=direction)
    critical = z_one_sided(alpha)
    harmed = z < -critical if direction == HIGHER else z > critical
    return FAIL if harmed else PASS


# --- Always-valid confidence sequences ----------------------------------------------------------------------


def confidence_sequence_rho(*, tuning_n: int, alpha: float) -> float:
    """rho = √((-2 ln alpha + ln(-2 ln alpha + 1)) / N): N is the sample size at which decisions usually happen."""
    if tuning_n <= 0:
        raise ValueError("tuning_n must be positive")
    if not 0 < alpha < 1:
        raise ValueError("alpha must be in (0, 1)")
    a = -2 * math.log(alpha)
    return math.sqrt((a + math.log(a + 1)) / tuning_n)


def confidence_sequence_half_width(*, n: int, sigma: float, alpha: float, tuning_n: int) -> float:
    """Asymptotic confidence sequence (Waudby-Smith et al. 2023), valid at every look.

    half-width = sigma * sqrt(2(n rho² + 1) * ln(sqrt(n rho² + 1) / alpha) / (n rho)²),
    sigma the per-observation standard deviation.
    """
    if n <= 0:
        return math.inf
    rho = confidence_sequence_rho(tuning_n=tuning_n, alpha=alpha)
    nr2 = n * rho * rho
    return sigma * math.sqrt(2 * (nr2 + 1) * math.log(math.sqrt(nr2 + 1) / alpha) / (n * rho) ** 2)


def _smoothed_variance(x: int, n: int) -> float:
    # Agresti-Caffo: one pseudo-success and one pseudo-failure, so 0/n and n/n do not claim zero variance.
    p = (x + 1) / (n + 2)
    return p * (1 - p)


def sequential_rate_interval(x: int, n: int, *, confidence: float, tuning_n: int) -> Interval:
    """Always-valid interval for one rate x/n (the absolute guardrail looked at every minute)."""
    _check_counts(x, n)
    if n == 0:
        return Interval(estimate=0.0, lower=0.0, upper=1.0, n=0)
    p = x / n
    sigma = math.sqrt(_smoothed_variance(x, n))
    half = confidence_sequence_half_width(n=n, sigma=sigma, alpha=1 - confidence, tuning_n=tuning_n)
    return Interval(estimate=p, lower=max(0.0, p - half), upper=min(1.0, p + half), n=n)


def sequential_difference_interval(
    x_new: int, n_new: int, x_base: int, n_base: int, *, confidence: float, tuning_n: int
) -> Interval:
    """Always-valid interval for Δ = p_new - p_base with n = n_new + n_base and sigma² = SE²·n."""
    _check_counts(x_new, n_new)
    _check_counts(x_base, n_base)
    if n_new == 0 or n_base == 0:
        return Interval(estimate=0.0, lower=-1.0, upper=1.0, n=n_new + n_base)
    delta = x_new / n_new - x_base / n_base
    se2 = _smoothed_variance(x_new, n_new) / n_new + _smoothed_variance(x_base, n_base) / n_base
    n = n_new + n_base
    sigma = math.sqrt(se2 * n)
    half = confidence_sequence_half_width(n=n, sigma=sigma, alpha=1 - confidence, tuning_n=tuning_n)
    return Interval(estimate=delta, lower=max(-1.0, delta - half), upper=min(1.0, delta + half), n=n)


# --- Verdicts -------------------------------------------------------------------------------------------------


def absolute_verdict(interval: Interval, *, threshold: float, direction: str) -> str:
    """Judge a rate's interval against an absolute bound on the bad side.

    Lower is better ("fallback below 8%"): fail when even the lower bound is above the bound, pass when the upper
    bound is at or under it. Higher is better ("CSAT at least 70%"): the mirror image. In between: inconclusive —
    which neither fails nor counts towards recovery, the hysteresis METRICS.md describes.
    """
    _check_direction(direction)
    if direction == LOWER:
        if interval.lower > threshold:
            return FAIL
        return PASS if interval.upper <= threshold else INCONCLUSIVE
    if interval.upper < threshold:
        return FAIL
    return PASS if interval.lower >= threshold else INCONCLUSIVE


def relative_verdict(difference: Interval, *, margin: float, direction: str) -> str:
    """Judge an interval of Δ = new - baseline against a tolerance δ.

    Higher is better: harm is Δ < -δ; fail when the upper bound is below -δ, pass when the lower bound is at or
    above -δ. Lower is better: harm is Δ > δ; fail when the lower bound is above δ, pass when the upper bound is at
    or below δ.
    """
    _check_direction(direction)
    if direction == HIGHER:
        if difference.upper < -margin:
            return FAIL
        return PASS if difference.lower >= -margin else INCONCLUSIVE
    if difference.lower > margin:
        return FAIL
    return PASS if difference.upper <= margin else INCONCLUSIVE


OUTCOME_SEVERITY = {FAIL: 4, ERROR: 3, INCONCLUSIVE: 2, INSUFFICIENT_DATA: 1, PASS: 0}


def worst_outcome(*outcomes: str) -> str:
    """Outcomes, worst first: fail > error > inconclusive > insufficient_data > pass."""
    if not outcomes:
        raise ValueError("no outcomes")
    return max(outcomes, key=OUTCOME_SEVERITY.__getitem__)


def _check_direction(direction: str) -> None:
    if direction not in (HIGHER, LOWER):
        raise ValueError(f"direction must be {HIGHER!r} or {LOWER!r}")


# --- Planning -------------------------------------------------------------------------------------------------


def min_sample_size_per_arm(p1: float, p2: float, *, alpha: float = 0.05, power: float = 0.8) -> int:
    """n = (z_(1-alpha)·√(2p̄q̄) + z_(1-beta)·√(p₁q₁ + p₂q₂))² / (p₁ - p₂)², one-sided alpha, rounded up."""
    if p1 == p2:
        raise ValueError("p1 and p2 must differ")
    for p in (p1, p2):
        if not 0 <= p <= 1:
            raise ValueError("rates must be in [0, 1]")
    p_bar = (p1 + p2) / 2
    term_alpha = z_one_sided(alpha) * math.sqrt(2 * p_bar * (1 - p_bar))
    term_beta = z_one_sided(1 - power) * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    return math.ceil((term_alpha + term_beta) ** 2 / (p1 - p2) ** 2)
