"""Judging one cohort and counting looks: pure functions over numbers, no ORM (``statistics.py`` holds the
formulas; this module holds the rules of METRICS.md and monitoring/README.md that turn them into outcomes).

``services/evaluation.py`` reads the samples and writes the evaluations; everything between is here and is tested
without a database.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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


@dataclass
class Totals:
    """What a cohort adds up to: counts for a rate, the mean value for a gauge, and how many windows."""

    numerator: int = 0
    denominator: int = 0
    value: float | None = None
    windows: int = 0


@dataclass(frozen=True)
class Rule:
    """The part of a guardrail (and its metric) that judging needs."""

    kind: str
    direction: str
    absolute_threshold: float | None
    relative_margin: float | None
    min_sample_size: int
    confidence: float
    tuning_n: int


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


def judge(rule: Rule, treatment: Totals, baseline: Totals | None) -> Judgement:
    """The outcome of one look at one cohort: a gauge against its bound, a rate against its absolute bound
    and/or against the baseline; below the minimum sample it is ``insufficient_data``, never ``fail``."""
    if rule.kind == GAUGE:
        return _judge_gauge(rule, treatment)
    return _judge_rate(rule, treatment, baseline)


def judge_safely(rule: Rule, treatment: Totals, baseline: Totals | None) -> Judgement:
    """``judge``, with any failure of the arithmetic on this cohort's data (an overflow, an infinity, a bad
    count) turned into this cohort's ``error`` outcome: one release's bad data never halts the others."""
    try:
        judgement = judge(rule, treatment, baseline)
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
    judgement = Judgement(n=treatment.denominator or treatment.windows, observed=treatment.value)
    if judgement.n < rule.min_sample_size or treatment.value is None:
        judgement.outcome = st.INSUFFICIENT_DATA
        return judgement
    if rule.absolute_threshold is None:
        raise ValueError("A gauge guardrail needs an absolute threshold.")
    judgement.lower = judgement.upper = treatment.value
    judgement.outcome = st.absolute_verdict(
        st.Interval(treatment.value, treatment.value, treatment.value, judgement.n),
        threshold=rule.absolute_threshold,
        direction=rule.direction,
    )
    return judgement


def _judge_rate(rule: Rule, treatment: Totals, baseline: Totals | None) -> Judgement:
    x, n = treatment.numerator, treatment.denominator
    judgement = Judgement(n=n, observed=x / n if n else None)
    if n < max(1, rule.min_sample_size):
        judgement.outcome = st.INSUFFICIENT_DATA
        judgement.detail = f"n={n} below the minimum sample {rule.min_sample_size}"
        return judgement
    outcomes: list[str] = []
    if rule.absolute_threshold is not None:
        interval = st.sequential_rate_interval(x, n, confidence=rule.confidence, tuning_n=rule.tuning_n)
        judgement.lower, judgement.upper = interval.lower, interval.upper
        outcomes.append(st.absolute_verdict(interval, threshold=rule.absolute_threshold, direction=rule.direction))
    if rule.relative_margin is not None:
        if baseline is None or baseline.denominator == 0:
            judgement.detail = "No baseline: no control arm and no previous verified release with data."
            if rule.absolute_threshold is None:
                outcomes.append(st.INSUFFICIENT_DATA)
        else:
            judgement.baseline = baseline.numerator / baseline.denominator
            judgement.baseline_n = baseline.denominator
            if baseline.denominator < rule.min_sample_size:
                outcomes.append(st.INSUFFICIENT_DATA)
            else:
                difference = st.sequential_difference_interval(
                    x,
                    n,
                    baseline.numerator,
                    baseline.denominator,
                    confidence=rule.confidence,
                    tuning_n=rule.tuning_n,
                )
                judgement.difference_lower, judgement.difference_upper = difference.lower, difference.upper
                outcomes.append(st.relative_verdict(difference, margin=rule.relative_margin, direction=rule.direction))
    judgement.outcome = st.worst_outcome(*outcomes) if outcomes else st.INSUFFICIENT_DATA
    return judgement
