"""Judging one cohort and counting looks: pure functions over numbers, no ORM (``statistics.py`` holds the
formulas; this module holds the rules of METRICS.md and monitoring/README.md that turn them into outcomes).

``services/evaluation.py`` reads the samples and writes the evaluations; everything between is here and is tested
without a database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from . import statistics as st

GAUGE = "gauge"


@dataclass(frozen=True)
class Counters:
    failures: int = 0
    consecutive_passes: int = 0
    breached: bool = False


def next_counters(previous: Counters, outcome: str, *, failure_limit: int, success_limit: int) -> Counters:
    """Carry a guardrail's counters over one more evaluation (see monitoring/README.md for examples).

    fail: one more failure, the pass streak breaks. pass: the streak grows; ``success_limit`` passes in a row
    forget the failures (recovery). inconclusive / insufficient_data: the streak breaks, failures stay (a data gap
    neither fails nor recovers). error: nothing changes — a pipeline error says nothing about the release.
    Breached when failures > failure_limit; a limit of -1 never breaches.
    """
    failures, passes = previous.failures, previous.consecutive_passes
    if outcome == st.FAIL:
        failures, passes = failures + 1, 0
    elif outcome == st.PASS:
        passes += 1
        if passes >= success_limit:
            failures = 0
    elif outcome in (st.INCONCLUSIVE, st.INSUFFICIENT_DATA):
        passes = 0
    else:
        return previous
    return Counters(
        failures=failures, consecutive_passes=passes, breached=failure_limit >= 0 and failures > failure_limit
    )


def tuning_n_for(min_sample_size: int) -> int:
    """The n a guardrail's confidence sequence is tightest around: where decisions are usually taken."""
    return max(2 * min_sample_size, 200)


TURN = "turn"
CONVERSATION = "conversation"

# Short, stable reasons beside the outcome (the detail says the same for a person, with the numbers).
REASON_BELOW_MINIMUM = "below_minimum_sample"
REASON_NO_WINDOW = "no_complete_window"
REASON_NO_CONTROL = "no_control_arm"
REASON_BASELINE_MISSING = "baseline_missing"
REASON_BASELINE_SMALL = "baseline_below_minimum"
REASON_SRM = "sample_ratio_mismatch"

VARIANCE_BINOMIAL = "binomial"
VARIANCE_DELTA = "delta_method"
VARIANCE_DESIGN_EFFECT = "design_effect"
VARIANCE_NONE = "none"  # gauges: each window compared with the bound, no statistics


@dataclass(slots=True)
class Totals:
    """What a cohort adds up to: counts for a rate, the latest window's value for a gauge, how many windows, and
    the per-unit sums (units k, Σx, Σy, Σx², Σy², Σxy) when every window carried them."""

    numerator: int = 0
    denominator: int = 0
    value: float | None = None
    windows: int = 0
    units: int = 0
    sum_x: float = 0.0
    sum_y: float = 0.0
    sum_xx: float = 0.0
    sum_yy: float = 0.0
    sum_xy: float = 0.0
    windows_with_sums: int = 0
    # What the look saw (its identity): the latest receipt and the end of the latest window in the cohort.
    last_received: datetime | None = None
    last_window_end: datetime | None = None

    @property
    def has_unit_sums(self) -> bool:
        return self.windows > 0 and self.windows_with_sums == self.windows and self.units >= 2


@dataclass(frozen=True)
class Rule:
    """The part of a guardrail (and its metric) that judging needs. ``confidence`` is per sequence (after the
    release-level split); ``first_release``: the solution has no earlier verified release, so without a control arm
    the absolute bound alone applies; ``treatment_share`` is the planned split the SRM test checks."""

    kind: str
    direction: str
    absolute_threshold: float | None
    relative_margin: float | None
    min_sample_size: int
    confidence: float
    tuning_n: int
    unit: str = CONVERSATION
    design_effect: float = 1.0
    first_release: bool = True
    treatment_share: float = 0.5
    # The release and market's split as the service measured it (treatment, control conversations) on the metric
    # that counts them best; None: judge the split on this metric's own counts.
    split: tuple[int, int] | None = None


def split_units(metric_unit: str, treatment: Totals, control: Totals) -> tuple[int, int] | None:
    """The conversations behind two arms of one metric, when they are known: a conversation-level rate's
    denominators, a turn-level rate's per-unit ``units`` (None without the sums)."""
    if metric_unit == TURN:
        return (treatment.units, control.units) if treatment.has_unit_sums and control.has_unit_sums else None
    return treatment.denominator, control.denominator


@dataclass
class Judgement:
    outcome: str = st.INSUFFICIENT_DATA
    n: int = 0
    observed: float | None = None
    lower: float | None = None
    upper: float | None = None
    baseline: float | None = None
    baseline_n: int = 0
    difference_lower: float | None = None
    difference_upper: float | None = None
    detail: str = ""
    reason: str = ""
    variance_method: str = VARIANCE_BINOMIAL
    sample_ratio_mismatch: bool = False

    def note(self, reason: str, text: str) -> None:
        self.reason = self.reason or reason
        self.detail = f"{self.detail}; {text}" if self.detail else text


def judge(rule: Rule, treatment: Totals, baseline: Totals | None, *, baseline_is_control: bool = False) -> Judgement:
    """The outcome of one look at one cohort: a gauge against its bound, a rate against its absolute bound
    and/or against the baseline; below the minimum sample it is ``insufficient_data``, never ``fail``."""
    if rule.kind == GAUGE:
        return _judge_gauge(rule, treatment)
    return _judge_rate(rule, treatment, baseline, baseline_is_control=baseline_is_control)


def judge_safely(
    rule: Rule, treatment: Totals, baseline: Totals | None, *, baseline_is_control: bool = False
) -> Judgement:
    """``judge``, with any failure of the arithmetic on this cohort's data (an overflow, an infinity, a bad
    count) turned into this cohort's ``error`` outcome: one release's bad data never halts the others."""
    try:
        judgement = judge(rule, treatment, baseline, baseline_is_control=baseline_is_control)
        _check_finite(judgement)
    # Any exception: whatever the data did, it is this cohort's error (logged by the caller), not the batch's.
    except Exception as exc:
        return Judgement(outcome=st.ERROR, n=treatment.denominator, detail=f"{type(exc).__name__}: {exc}")
    return judgement


def _check_finite(judgement: Judgement) -> None:
    for name in ("observed", "lower", "upper", "baseline", "difference_lower", "difference_upper"):
        value = getattr(judgement, name)
        if value is not None and not math.isfinite(value):
            raise ArithmeticError(f"{name} is {value}")


def _judge_gauge(rule: Rule, treatment: Totals) -> Judgement:
    # No interval from one number per window, and an average of percentiles is no percentile: the latest window is
    # compared with the bound as it is, and the minimum counts windows.
    judgement = Judgement(n=treatment.windows, observed=treatment.value, variance_method=VARIANCE_NONE)
    if rule.absolute_threshold is None:
        raise ValueError("A gauge guardrail needs an absolute threshold.")
    if treatment.value is None:
        judgement.note(REASON_NO_WINDOW, "no complete window in this phase yet")
        return judgement
    if treatment.windows < rule.min_sample_size:
        judgement.note(
            REASON_BELOW_MINIMUM, f"{treatment.windows} of {rule.min_sample_size} windows (a gauge counts windows)"
        )
        return judgement
    judgement.lower = judgement.upper = treatment.value
    judgement.outcome = st.absolute_verdict(
        st.Interval(treatment.value, treatment.value, treatment.value, treatment.windows),
        threshold=rule.absolute_threshold,
        direction=rule.direction,
    )
    judgement.detail = "gauge: the latest window compared with the bound, no statistics; n counts windows"
    return judgement


def rate_variance(rule: Rule, totals: Totals) -> tuple[float, int, str]:
    """(variance of the cohort's rate, the n the confidence sequence counts, how it was computed).

    A conversation-level rate is a binomial proportion. A turn-level rate (turns are clustered in conversations,
    the randomisation unit) uses the delta method when every window carried the per-unit sums, else the binomial
    variance inflated by the metric's declared design effect.
    """
    x, n = totals.numerator, totals.denominator
    if rule.unit != TURN:
        return st.binomial_ratio_variance(x, n), n, VARIANCE_BINOMIAL
    if totals.has_unit_sums:
        variance = st.delta_method_ratio_variance(
            units=totals.units,
            sum_x=totals.sum_x,
            sum_y=totals.sum_y,
            sum_xx=totals.sum_xx,
            sum_yy=totals.sum_yy,
            sum_xy=totals.sum_xy,
        )
        # A cohort whose units all agree (no errors at all) has zero sample variance; the smoothed binomial variance
        # stands in so 0 errors in 40 conversations does not claim certainty.
        return variance or st.binomial_ratio_variance(x, n), totals.units, VARIANCE_DELTA
    return st.binomial_ratio_variance(x, n, design_effect=rule.design_effect), n, VARIANCE_DESIGN_EFFECT


def _judge_rate(rule: Rule, treatment: Totals, baseline: Totals | None, *, baseline_is_control: bool) -> Judgement:
    x, n = treatment.numerator, treatment.denominator
    judgement = Judgement(n=n, observed=x / n if n else None)
    if n == 0 and treatment.windows == 0:
        judgement.note(REASON_NO_WINDOW, "no complete window in this phase yet")
        return judgement
    if n < max(1, rule.min_sample_size):
        judgement.note(REASON_BELOW_MINIMUM, f"{n} of {rule.min_sample_size} in the sample so far")
        return judgement
    variance, units, judgement.variance_method = rate_variance(rule, treatment)
    outcomes: list[str] = []
    if rule.absolute_threshold is not None:
        interval = st.sequential_interval_from_variance(
            x / n, variance, units, confidence=rule.confidence, tuning_n=rule.tuning_n, bounds=(0.0, 1.0)
        )
        judgement.lower, judgement.upper = interval.lower, interval.upper
        outcomes.append(st.absolute_verdict(interval, threshold=rule.absolute_threshold, direction=rule.direction))
    if rule.relative_margin is not None:
        outcomes.append(_relative(rule, judgement, treatment, baseline, variance, units, baseline_is_control))
    judgement.outcome = st.worst_outcome(*outcomes) if outcomes else st.INSUFFICIENT_DATA
    return judgement


def _relative(
    rule: Rule,
    judgement: Judgement,
    treatment: Totals,
    baseline: Totals | None,
    variance: float,
    units: int,
    baseline_is_control: bool,
) -> str:
    if baseline is None or baseline.denominator == 0:
        if rule.first_release:
            if rule.absolute_threshold is not None:
                # A solution's first release has nothing earlier to compare with: its absolute bound judges it.
                judgement.note(REASON_NO_CONTROL, "no control arm and no earlier release: the absolute bound applies")
                return st.PASS
            judgement.note(REASON_NO_CONTROL, "no control arm (and no earlier verified release): send control samples")
            return st.INSUFFICIENT_DATA
        judgement.note(
            REASON_BASELINE_MISSING,
            "no control arm, and the previous verified release has no samples of this metric version in this market",
        )
        return st.INSUFFICIENT_DATA
    judgement.baseline = baseline.numerator / baseline.denominator
    judgement.baseline_n = baseline.denominator
    if baseline.denominator < rule.min_sample_size:
        judgement.note(REASON_BASELINE_SMALL, f"baseline {baseline.denominator} of {rule.min_sample_size}")
        return st.INSUFFICIENT_DATA
    t_units = c_units = 0
    if baseline_is_control:
        # The split is by conversation, so it is tested on conversation counts: the release and market's (given by
        # the service), else this metric's own when they are conversations.
        split = rule.split or split_units(rule.unit, treatment, baseline)
        if split is not None:
            t_units, c_units = split
            judgement.sample_ratio_mismatch = st.sample_ratio_mismatch(
                t_units, c_units, treatment_share=rule.treatment_share
            )
    base_variance, base_units, _ = rate_variance(rule, baseline)
    difference = st.sequential_interval_from_variance(
        treatment.numerator / treatment.denominator - judgement.baseline,
        variance + base_variance,
        units + base_units,
        confidence=rule.confidence,
        tuning_n=rule.tuning_n,
        bounds=(-1.0, 1.0),
    )
    judgement.difference_lower, judgement.difference_upper = difference.lower, difference.upper
    if judgement.sample_ratio_mismatch:
        judgement.note(
            REASON_SRM,
            f"sample ratio mismatch: {t_units} treatment vs {c_units} control against a planned "
            f"{rule.treatment_share:.0%} share; the comparison is not read",
        )
        return st.INCONCLUSIVE
    return st.relative_verdict(difference, margin=rule.relative_margin or 0.0, direction=rule.direction)
