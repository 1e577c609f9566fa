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

import functools
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


# --- Units: the delta method for a ratio of per-conversation sums ------------------------------------------------


def delta_method_ratio_variance(
    *, units: int, sum_x: float, sum_y: float, sum_xx: float, sum_yy: float, sum_xy: float
) -> float:
    """Var(X̄/Ȳ) ≈ (1/k)·(s²ₓ/ȳ² − 2·x̄·sₓᵧ/ȳ³ + x̄²·s²ᵧ/ȳ⁴) (Deng, Knoblich & Lu 2018), from the per-unit sums
    of x (numerator per conversation) and y (denominator per conversation) over k units.

    This is the variance of the ratio itself (already divided by k); sample (co)variances use k − 1.
    """
    if units < 2:
        raise ValueError("the delta method needs at least two units")
    k = units
    x_bar, y_bar = sum_x / k, sum_y / k
    if y_bar <= 0:
        raise ValueError("the denominator's mean must be positive")
    s_xx = max(0.0, (sum_xx - k * x_bar * x_bar) / (k - 1))
    s_yy = max(0.0, (sum_yy - k * y_bar * y_bar) / (k - 1))
    s_xy = (sum_xy - k * x_bar * y_bar) / (k - 1)
    variance = (s_xx / y_bar**2 - 2 * x_bar * s_xy / y_bar**3 + x_bar**2 * s_yy / y_bar**4) / k
    return max(variance, 0.0)


def binomial_ratio_variance(x: int, n: int, *, design_effect: float = 1.0) -> float:
    """The variance of x/n as independent trials (smoothed, see ``_smoothed_variance``), inflated by a declared
    design effect when the trials are clustered and the per-unit sums are absent."""
    _check_counts(x, n)
    if n == 0:
        return math.inf
    if design_effect < 1:
        raise ValueError("a design effect is at least 1")
    return _smoothed_variance(x, n) / n * design_effect


def sequential_interval_from_variance(
    estimate: float, variance: float, n: int, *, confidence: float, tuning_n: int, bounds: tuple[float, float]
) -> Interval:
    """Always-valid interval around ``estimate`` whose variance is ``variance`` with n observations (units):
    σ̂² = variance·n is the per-unit variance the confidence sequence needs; the result is clipped to ``bounds``."""
    if n <= 0:
        return Interval(estimate=estimate, lower=bounds[0], upper=bounds[1], n=0)
    sigma = math.sqrt(variance * n)
    half = confidence_sequence_half_width(n=n, sigma=sigma, alpha=1 - confidence, tuning_n=tuning_n)
    return Interval(
        estimate=estimate, lower=max(bounds[0], estimate - half), upper=min(bounds[1], estimate + half), n=n
    )


# --- Sample ratio mismatch: an always-valid test of the split -----------------------------------------------------

SRM_ALPHA = 0.001
SRM_PRIOR_CONCENTRATION = 100.0


def srm_log_bayes_factor(
    treatment: int, control: int, *, treatment_share: float, concentration: float = SRM_PRIOR_CONCENTRATION
) -> float:
    """ln of the Bayes factor of "the split is not ``treatment_share``" against "it is", with a Beta prior centred
    on the planned split (the two-arm case of the sequential Dirichlet-multinomial test, Lindon & Malek 2022).

    Under the planned split the factor is a nonnegative martingale, so by Ville's inequality it exceeds 1/α with
    probability at most α however often it is looked at: a mismatch when ln BF > ln(1/α).
    """
    if treatment < 0 or control < 0:
        raise ValueError("counts must be nonnegative")
    if not 0 < treatment_share < 1:
        raise ValueError("treatment_share must be in (0, 1)")
    a, b = concentration * treatment_share, concentration * (1 - treatment_share)

    def log_beta(p: float, q: float) -> float:
        return math.lgamma(p) + math.lgamma(q) - math.lgamma(p + q)

    marginal = log_beta(treatment + a, control + b) - log_beta(a, b)
    null = treatment * math.log(treatment_share) + control * math.log(1 - treatment_share)
    return marginal - null


# Every guardrail of a release and market checks the same split at each look: computed once.
@functools.lru_cache(maxsize=65536)
def sample_ratio_mismatch(treatment: int, control: int, *, treatment_share: float, alpha: float = SRM_ALPHA) -> bool:
    """True when the observed units contradict the planned split at level α (valid at every look)."""
    return srm_log_bayes_factor(treatment, control, treatment_share=treatment_share) > math.log(1 / alpha)


def bonferroni_confidence(confidence: float, sequences: int) -> float:
    """The per-sequence confidence that keeps the release's false-alarm rate at 1 − ``confidence`` over
    ``sequences`` sequences judged at once: α/K each."""
    _check_confidence(confidence)
    if sequences < 1:
        raise ValueError("at least one sequence")
    return 1 - (1 - confidence) / sequences
