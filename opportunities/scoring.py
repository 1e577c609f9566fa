"""RICE scoring of an opportunity — pure functions, no Django.

    score = Reachʷʳ × Impactʷⁱ × Confidenceʷᶜ ÷ Effortʷᵉ

* Reach: conversations per week on the targeted contact reasons (and markets, audience), averaged over the last
  complete weeks of contact-reason data.
* Impact: human hours saved per reached conversation = expected containment lift × average human handle time
  (hours) of those reasons. Reach × Impact is therefore the expected human hours saved per week.
* Confidence: 0–1, the owner's.  Effort: person-weeks.
* The weights are exponents (all 1 = plain RICE); raising one makes that factor weigh more in the ranking.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Weights:
    reach: float = 1.0
    impact: float = 1.0
    confidence: float = 1.0
    effort: float = 1.0


@dataclass(frozen=True)
class Score:
    reach: float
    avg_handle_minutes: float
    impact: float
    confidence: float
    effort: float
    weights: Weights
    value: float
    expected_hours_saved_per_week: float

    @property
    def formula(self) -> str:
        """The formula with this opportunity's numbers, as the admin and the API show it."""
        w = self.weights

        def power(symbol: str, weight: float) -> str:
            return symbol if weight == 1 else f"{symbol}^{weight:g}"

        return (
            f"{power('R', w.reach)} × {power('I', w.impact)} × {power('C', w.confidence)} ÷ {power('E', w.effort)}"
            f" = {power(f'{self.reach:,.0f}', w.reach)} × {power(f'{self.impact:.4f}', w.impact)}"
            f" × {power(f'{self.confidence:g}', w.confidence)} ÷ {power(f'{self.effort:g}', w.effort)}"
            f" = {self.value:,.2f}"
        )


def rice_score(
    *,
    weekly_conversations: float,
    avg_handle_minutes: float,
    expected_lift: float,
    confidence: float,
    effort_weeks: float,
    weights: Weights,
) -> Score:
    if weekly_conversations < 0 or avg_handle_minutes < 0:
        raise ValueError("reach and handle time cannot be negative")
    if effort_weeks <= 0:
        raise ValueError("effort must be positive")
    impact = expected_lift * avg_handle_minutes / 60
    value = (
        weekly_conversations**weights.reach * impact**weights.impact * confidence**weights.confidence
    ) / effort_weeks**weights.effort
    return Score(
        reach=weekly_conversations,
        avg_handle_minutes=avg_handle_minutes,
        impact=impact,
        confidence=confidence,
        effort=effort_weeks,
        weights=weights,
        value=value,
        expected_hours_saved_per_week=weekly_conversations * impact,
    )
