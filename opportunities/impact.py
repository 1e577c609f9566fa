"""Realized impact of a delivered opportunity and the calibration of predictions — pure functions, no Django.

Containment = conversations with no handoff and not abandoned / conversations (METRICS.md), on the targeted
contact reasons. The lift is judged on an interval (Newcombe's hybrid score interval for a difference of two
proportions, from ``monitoring.statistics``):

* before vs after: the weeks before ``live_since`` against the weeks after it;
* vs control: where a control arm ran after ``live_since``, treatment against control (the better comparison:
  it removes seasonality and mix shifts) — then it is the headline.

Human hours saved per week = (handoff rate of the baseline − handoff rate after) × conversations per week after
× the baseline's average handle time. Rates, not counts, so a busier or quieter month is not read as impact.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monitoring.statistics import Interval, newcombe_difference_interval

BEFORE_AFTER = "before_after"
VS_CONTROL = "vs_control"


@dataclass(frozen=True)
class PeriodCounts:
    conversations: int
    handed_to_human: int
    abandoned: int
    handle_minutes: float  # Σ handed_to_human × avg_handle_minutes
    weeks: float

    @property
    def contained(self) -> int:
        return self.conversations - self.handed_to_human - self.abandoned

    @property
    def containment(self) -> float:
        return self.contained / self.conversations if self.conversations else 0.0

    @property
    def handoff_rate(self) -> float:
        return self.handed_to_human / self.conversations if self.conversations else 0.0

    @property
    def avg_handle_minutes(self) -> float:
        return self.handle_minutes / self.handed_to_human if self.handed_to_human else 0.0

    @property
    def conversations_per_week(self) -> float:
        return self.conversations / self.weeks if self.weeks else 0.0

    @property
    def handoffs_per_week(self) -> float:
        return self.handed_to_human / self.weeks if self.weeks else 0.0


@dataclass(frozen=True)
class RealizedImpact:
    before: PeriodCounts
    after: PeriodCounts
    control: PeriodCounts | None
    lift_before_after: Interval
    lift_vs_control: Interval | None
    hours_saved_per_week: float
    confidence: float

    @property
    def basis(self) -> str:
        return VS_CONTROL if self.lift_vs_control is not None else BEFORE_AFTER

    @property
    def lift(self) -> Interval:
        """The headline lift: against the control arm where one ran, else before vs after."""
        return self.lift_vs_control if self.lift_vs_control is not None else self.lift_before_after

    def as_dict(self) -> dict[str, object]:
        def period(counts: PeriodCounts | None) -> dict[str, float] | None:
            if counts is None:
                return None
            return {
                "conversations": counts.conversations,
                "handed_to_human": counts.handed_to_human,
                "abandoned": counts.abandoned,
                "weeks": round(counts.weeks, 3),
                "containment": round(counts.containment, 4),
                "handoff_rate": round(counts.handoff_rate, 4),
                "avg_handle_minutes": round(counts.avg_handle_minutes, 2),
                "conversations_per_week": round(counts.conversations_per_week, 1),
                "handoffs_per_week": round(counts.handoffs_per_week, 1),
            }

        def interval(value: Interval | None) -> dict[str, float] | None:
            if value is None:
                return None
            return {
                "estimate": round(value.estimate, 4),
                "lower": round(value.lower, 4),
                "upper": round(value.upper, 4),
            }

        return {
            "basis": self.basis,
            "confidence": self.confidence,
            "before": period(self.before),
            "after": period(self.after),
            "control": period(self.control),
            "lift_before_after": interval(self.lift_before_after),
            "lift_vs_control": interval(self.lift_vs_control),
            "lift": interval(self.lift),
            "hours_saved_per_week": round(self.hours_saved_per_week, 2),
        }


def realized_impact(
    *, before: PeriodCounts, after: PeriodCounts, control: PeriodCounts | None = None, confidence: float = 0.95
) -> RealizedImpact:
    if before.conversations <= 0 or after.conversations <= 0:
        raise ValueError("both periods need conversations")
    lift = newcombe_difference_interval(
        after.contained, after.conversations, before.contained, before.conversations, confidence
    )
    vs_control = None
    baseline = before
    if control is not None and control.conversations > 0:
        vs_control = newcombe_difference_interval(
            after.contained, after.conversations, control.contained, control.conversations, confidence
        )
        baseline = control
    hours = (
        (baseline.handoff_rate - after.handoff_rate) * after.conversations_per_week * baseline.avg_handle_minutes / 60
    )
    return RealizedImpact(
        before=before,
        after=after,
        control=control if vs_control is not None else None,
        lift_before_after=lift,
        lift_vs_control=vs_control,
        hours_saved_per_week=hours,
        confidence=confidence,
    )


@dataclass(frozen=True)
class CalibrationRow:
    opportunity_id: int
    title: str
    predicted_lift: float
    realized_lift: float
    predicted_hours: float | None
    realized_hours: float | None

    @property
    def ratio(self) -> float | None:
        """Predicted ÷ realized lift: 2.0 means the estimate was twice what happened."""
        return self.predicted_lift / self.realized_lift if self.realized_lift > 0 else None


@dataclass(frozen=True)
class Calibration:
    rows: Sequence[CalibrationRow]
    # Σ predicted lift ÷ Σ realized lift: one ratio that no single tiny realized lift can blow up.
    factor: float | None

    @property
    def summary(self) -> str:
        if not self.rows:
            return "No measured opportunity yet: nothing to compare predictions with."
        n = len(self.rows)
        across = f"across {n} measured opportunit{'y' if n == 1 else 'ies'}"
        if self.factor is None:
            return f"No realized lift {across}: every estimate was optimistic."
        if self.factor >= 1.05:
            return f"Estimates were {self.factor:.1f}× optimistic on average ({across})."
        if self.factor <= 0.95:
            return f"Estimates were {1 / self.factor:.1f}× pessimistic on average ({across})."
        return f"Estimates were well calibrated ({self.factor:.2f}× the outcome, {across})."


def calibrate(rows: Sequence[CalibrationRow]) -> Calibration:
    realized = sum(row.realized_lift for row in rows)
    predicted = sum(row.predicted_lift for row in rows)
    return Calibration(rows=rows, factor=predicted / realized if rows and realized > 0 else None)
