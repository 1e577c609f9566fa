"""The numbers, checked against hand-worked examples: RICE score, realized impact, calibration, gap ranking."""

from __future__ import annotations

import math

import pytest

from opportunities.impact import CalibrationRow, PeriodCounts, calibrate, realized_impact
from opportunities.scoring import Weights, rice_score
from opportunities.selectors import gap_analysis

from .conftest import store, volume_row, weeks_ago


def test_rice_score_by_hand():
    # Reach 1,000 conversations/week; impact = 0.2 lift × 9 min = 0.03 h per conversation → 30 h/week expected;
    # × confidence 0.8 ÷ 4 person-weeks = 6.0.
    score = rice_score(
        weekly_conversations=1000,
        avg_handle_minutes=9,
        expected_lift=0.2,
        confidence=0.8,
        effort_weeks=4,
        weights=Weights(),
    )
    assert score.impact == pytest.approx(0.03)
    assert score.expected_hours_saved_per_week == pytest.approx(30.0)
    assert score.value == pytest.approx(6.0)
    assert score.formula == "R × I × C ÷ E = 1,000 × 0.0300 × 0.8 ÷ 4 = 6.00"


def test_weights_are_exponents_and_change_the_ranking():
    common = {"avg_handle_minutes": 9, "expected_lift": 0.2, "weights": Weights(confidence=2)}
    # 30 h/week × 0.8² ÷ 4 = 4.8
    assert rice_score(weekly_conversations=1000, confidence=0.8, effort_weeks=4, **common).value == pytest.approx(4.8)
    big_unsure = {"weekly_conversations": 2000, "confidence": 0.5, "effort_weeks": 4}
    small_sure = {"weekly_conversations": 1000, "confidence": 1.0, "effort_weeks": 4}
    plain = {"avg_handle_minutes": 9, "expected_lift": 0.2, "weights": Weights()}
    # Plain RICE ties them (60 h × 0.5 ÷ 4 = 30 h × 1 ÷ 4 = 7.5); squaring confidence favours the sure bet.
    assert rice_score(**big_unsure, **plain).value == pytest.approx(7.5)
    assert rice_score(**small_sure, **plain).value == pytest.approx(7.5)
    assert rice_score(**big_unsure, **common).value == pytest.approx(3.75)
    assert rice_score(**small_sure, **common).value == pytest.approx(7.5)
    ignore_effort = rice_score(
        weekly_conversations=1000,
        confidence=0.8,
        effort_weeks=4,
        avg_handle_minutes=9,
        expected_lift=0.2,
        weights=Weights(effort=0),
    )
    assert ignore_effort.value == pytest.approx(24.0)
    assert "E^0" in ignore_effort.formula


def _wilson(x: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    p = x / n
    centre, spread = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - spread) / (1 + z * z / n), (centre + spread) / (1 + z * z / n)


def test_realized_impact_before_after_by_hand():
    # Before: 4 weeks, 4,000 conversations, 2,400 handed off (10 min each), 200 abandoned → containment 35%.
    # After: 2 weeks, 2,200 conversations, 990 handed off (9 min), 110 abandoned → containment 50%: lift +15 pp.
    # Hours saved/week = (0.60 − 0.45 handoff rate) × 1,100 conversations/week × 10 min / 60 = 27.5.
    before = PeriodCounts(conversations=4000, handed_to_human=2400, abandoned=200, handle_minutes=24000, weeks=4)
    after = PeriodCounts(conversations=2200, handed_to_human=990, abandoned=110, handle_minutes=8910, weeks=2)
    impact = realized_impact(before=before, after=after)
    assert impact.basis == "before_after"
    assert impact.lift.estimate == pytest.approx(0.15)
    assert impact.hours_saved_per_week == pytest.approx(27.5)
    # Newcombe's hybrid score interval from the two Wilson intervals, computed here independently.
    l_after, u_after = _wilson(1100, 2200)
    l_before, u_before = _wilson(1400, 4000)
    lower = 0.15 - math.sqrt((0.5 - l_after) ** 2 + (u_before - 0.35) ** 2)
    upper = 0.15 + math.sqrt((u_after - 0.5) ** 2 + (0.35 - l_before) ** 2)
    assert (impact.lift.lower, impact.lift.upper) == (pytest.approx(lower), pytest.approx(upper))
    assert 0.12 < impact.lift.lower < 0.15 < impact.lift.upper < 0.18
    assert impact.as_dict()["after"]["handoffs_per_week"] == 495.0


def test_realized_impact_prefers_the_control_arm():
    before = PeriodCounts(conversations=4000, handed_to_human=2400, abandoned=200, handle_minutes=24000, weeks=4)
    after = PeriodCounts(conversations=2200, handed_to_human=990, abandoned=110, handle_minutes=8910, weeks=2)
    # Control after go-live: 500 conversations, 300 handed off at 12 min, 25 abandoned → containment 35%.
    # Hours = (0.60 − 0.45) × 1,100 × 12 / 60 = 33.0 (the control's handle time is the baseline's).
    control = PeriodCounts(conversations=500, handed_to_human=300, abandoned=25, handle_minutes=3600, weeks=2)
    impact = realized_impact(before=before, after=after, control=control)
    assert impact.basis == "vs_control"
    assert impact.lift.estimate == pytest.approx(0.15)
    assert impact.lift_before_after.estimate == pytest.approx(0.15)
    assert impact.hours_saved_per_week == pytest.approx(33.0)
    # The smaller control arm gives a wider interval than before vs after.
    assert impact.lift.upper - impact.lift.lower > impact.lift_before_after.upper - impact.lift_before_after.lower


def test_realized_impact_needs_data_on_both_sides():
    empty = PeriodCounts(conversations=0, handed_to_human=0, abandoned=0, handle_minutes=0, weeks=0)
    some = PeriodCounts(conversations=10, handed_to_human=5, abandoned=0, handle_minutes=50, weeks=1)
    with pytest.raises(ValueError):
        realized_impact(before=empty, after=some)


def test_calibration_by_hand():
    assert calibrate([]).summary.startswith("No measured opportunity")
    rows = [CalibrationRow(1, "a", 0.30, 0.20, 30, 18), CalibrationRow(2, "b", 0.18, 0.10, 12, 7)]
    result = calibrate(rows)
    assert result.factor == pytest.approx(1.6)  # (0.30 + 0.18) / (0.20 + 0.10)
    assert result.summary == "Estimates were 1.6× optimistic on average (across 2 measured opportunities)."
    assert rows[0].ratio == pytest.approx(1.5)
    pessimistic = calibrate([CalibrationRow(1, "a", 0.10, 0.20, None, None)])
    assert pessimistic.summary.startswith("Estimates were 2.0× pessimistic")
    nothing = calibrate([CalibrationRow(1, "a", 0.10, -0.01, None, None)])
    assert nothing.factor is None and "No realized lift" in nothing.summary
    assert calibrate([CalibrationRow(1, "a", 0.2, 0.2, None, None)]).summary.startswith("Estimates were well")


@pytest.mark.django_db
def test_gap_analysis_ranks_by_handoffs_times_handle_time(solution):
    rows = []
    for week in range(1, 5):  # the 4 current weeks
        rows.append(volume_row(reason="refund-status", start=weeks_ago(week)))  # 1000 conv, 600 × 10 min
        rows.append(
            volume_row(
                reason="refund-status",
                start=weeks_ago(week),
                solution=solution.key,
                conversations=400,
                handed=100,
                abandoned=20,
                minutes=6,
            )
        )
        rows.append(
            volume_row(
                reason="order-tracking",
                market="DE",
                start=weeks_ago(week),
                conversations=3000,
                handed=900,
                abandoned=0,
                minutes=5,
            )
        )
    for week in range(5, 9):  # the 4 weeks before
        rows.append(volume_row(reason="refund-status", start=weeks_ago(week), handed=500))
    rows.append(volume_row(reason="ancient", start=weeks_ago(9), handed=900, minutes=60))  # outside the 8 weeks
    store(*rows)
    analysis = gap_analysis()
    assert [gap.contact_reason for gap in analysis.gaps] == ["refund-status", "order-tracking"]
    refunds, tracking = analysis.gaps
    # (600 × 10 + 100 × 6) min / 60 = 110 h per week, though order tracking has more conversations (75 h).
    assert refunds.human_hours_per_week == pytest.approx(110.0)
    assert tracking.human_hours_per_week == pytest.approx(75.0)
    assert refunds.coverage == pytest.approx(400 / 1400)
    assert refunds.containment == pytest.approx((1400 - 700 - 70) / 1400)
    assert refunds.avg_handle_minutes == pytest.approx(6600 / 700)
    assert refunds.trend == pytest.approx([500 * 10 / 60] * 4 + [110.0] * 4)
    assert refunds.trend_change == pytest.approx(110 / (5000 / 60) - 1)
    assert tracking.trend_change is None  # nothing before to compare with
    de_only = gap_analysis(market="DE")
    assert [gap.contact_reason for gap in de_only.gaps] == ["order-tracking"]
    assert gap_analysis(audience="sellers").gaps == []
