"""Demo data for the opportunities app: ten weeks of contact-reason volumes that make a believable gap analysis,
and three opportunities at different stages (one measured), all written through the real services.

``seed_opportunities_demo`` is called by ``manage.py seed_demo`` (with the demo's users, solutions and releases)
and by ``manage.py seed_opportunities_demo``. Idempotent: it does nothing when opportunities exist.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.actors import Actor
from releases.choices import Audience, ReleaseStatus
from releases.models import AutomationSolution, Release

from . import services
from .choices import VolumeArm
from .ingestion import upsert_volumes, validate_volumes
from .models import ContactReasonVolume, Opportunity
from .selectors import WEEK, week_floor

WEEKS = 10
MARKETS = {"US": 1.0, "DE": 0.6, "FR": 0.45}
# The measured opportunity's change reached customers this many weeks before the current week.
LIVE_WEEKS_AGO = 3
CONTROL_SHARE = 0.1
SOURCE = "demo"


@dataclass(frozen=True)
class Reason:
    slug: str
    audience: str
    weekly: int  # conversations per week in the US
    handle_minutes: float
    solution: str = ""  # the key of the solution serving part of it
    coverage: float = 0.0  # share of conversations the solution serves
    bot_containment: float = 0.0  # share of the served ones it contains
    growth: float = 0.0  # weekly growth of the volume


REASONS = [
    Reason("order-tracking", Audience.BUYERS, 2600, 6.5, growth=0.02),
    Reason("item-not-received", Audience.BUYERS, 1100, 13.0, growth=0.015),
    Reason("refund-status", Audience.BUYERS, 1400, 9.0, "buyer-refunds", 0.35, 0.55),
    Reason("return-label", Audience.BUYERS, 900, 11.0),
    Reason("payment-failed", Audience.BUYERS, 700, 14.0, growth=-0.01),
    Reason("payout-delay", Audience.SELLERS, 800, 16.0, "seller-payouts", 0.25, 0.5, growth=0.01),
    Reason("listing-removed", Audience.SELLERS, 450, 18.0),
    Reason("fee-dispute", Audience.SELLERS, 380, 21.0),
    Reason("account-verification", Audience.CREATORS, 500, 12.0, "creator-onboarding", 0.4, 0.6),
    Reason("creator-payout-tax", Audience.CREATORS, 220, 19.0),
]
# What the measured opportunity changed on refund-status: the solution serves more of it and contains more.
REFUND_AFTER = {"coverage": 0.6, "bot_containment": 0.62}


def _split(
    rng: random.Random, *, conversations: int, coverage: float, bot_containment: float
) -> list[tuple[bool, int, int, int]]:
    """(served by the solution?, conversations, handed to a human, abandoned) for one reason-market-week."""
    served = round(conversations * coverage)
    rows = []
    if served:
        contained = round(served * bot_containment * rng.uniform(0.97, 1.03))
        abandoned = round(served * 0.05)
        rows.append((True, served, max(served - contained - abandoned, 0), abandoned))
    human = conversations - served
    # Straight to a human: most are handled by an agent, a few give up, a few find the FAQ.
    abandoned = round(human * 0.05)
    rows.append((False, human, round(human * 0.92), abandoned))
    return rows


def contact_reason_rows(*, now: datetime, solution_keys: set[str], seed: int = 12) -> list[dict[str, Any]]:
    """Weekly rows for every reason, market and split over the last ``WEEKS`` complete weeks (ingestion rows).
    A reason whose solution is not among ``solution_keys`` is served by humans only."""
    rng = random.Random(seed)  # deterministic: the demo looks the same every time
    end = week_floor(now)
    live_since = end - LIVE_WEEKS_AGO * WEEK
    rows: list[dict[str, Any]] = []
    for week in range(WEEKS):
        start = end - (WEEKS - week) * WEEK
        for reason in REASONS:
            if reason.solution and reason.solution not in solution_keys:
                reason = Reason(
                    reason.slug, reason.audience, reason.weekly, reason.handle_minutes, growth=reason.growth
                )
            for market, scale in MARKETS.items():
                total = round(reason.weekly * scale * (1 + reason.growth) ** week * rng.uniform(0.93, 1.07))
                arms: list[tuple[str, int, float, float]]
                if reason.slug == "refund-status" and reason.solution and start >= live_since:
                    control = round(total * CONTROL_SHARE)
                    arms = [
                        (
                            VolumeArm.TREATMENT,
                            total - control,
                            REFUND_AFTER["coverage"],
                            REFUND_AFTER["bot_containment"],
                        ),
                        (VolumeArm.CONTROL, control, reason.coverage, reason.bot_containment),
                    ]
                else:
                    arms = [(VolumeArm.ALL, total, reason.coverage, reason.bot_containment)]
                for arm, conversations, coverage, containment in arms:
                    for served, count, handed, abandoned in _split(
                        rng, conversations=conversations, coverage=coverage, bot_containment=containment
                    ):
                        rows.append(
                            {
                                "source": SOURCE,
                                "contact_reason": reason.slug,
                                "market": market,
                                "audience": reason.audience,
                                "arm": arm,
                                "solution": reason.solution if served else "",
                                "window_start": start.isoformat(),
                                "window_end": (start + WEEK).isoformat(),
                                "conversations": count,
                                "handed_to_human": handed,
                                "abandoned": abandoned,
                                "avg_handle_minutes": round(reason.handle_minutes * rng.uniform(0.95, 1.05), 2),
                                "csat_responses": round(count * 0.18),
                                "csat_positive": round(count * 0.18 * (0.78 if served else 0.7)),
                            }
                        )
    return rows


@transaction.atomic
def seed_opportunities_demo(
    *,
    program_manager: Actor,
    solutions: Mapping[str, AutomationSolution],
    releases: Sequence[Release],
    now: datetime | None = None,
) -> list[Opportunity]:
    """Contact-reason data plus three opportunities: proposed (the top gap), in delivery, and measured (linked to
    a verified buyer-refunds release; it went live ``LIVE_WEEKS_AGO`` weeks ago)."""
    if Opportunity.objects.exists():
        return list(Opportunity.objects.all())
    now = now or timezone.now()
    if not ContactReasonVolume.objects.filter(source=SOURCE).exists():
        rows = contact_reason_rows(now=now, solution_keys=set(solutions))
        upsert_volumes(validate_volumes(rows, now=now))
    pm = program_manager

    def move(opportunity: Opportunity, *steps: str, **arguments: Any) -> Opportunity:
        for step in steps:
            opportunity = services.opportunity_transition(
                opportunity=opportunity, transition=step, actor=pm, now=now, **(arguments if step == "deliver" else {})
            )
        return opportunity

    created = []
    refunds = solutions.get("buyer-refunds")
    verified = [r for r in releases if refunds and r.solution_id == refunds.pk and r.status == ReleaseStatus.VERIFIED]
    if refunds is not None and verified:
        measured = services.opportunity_create(
            actor=pm,
            title="Refund status answered end to end",
            contact_reasons=["refund-status"],
            hypothesis="Buyers asking where their refund is need the refund's state and date, which the order "
            "lookup tool has: let the refunds assistant answer instead of handing off.",
            expected_containment_lift=0.28,
            effort_weeks=3,
            confidence=0.8,
            markets=sorted(MARKETS),
            audience=Audience.BUYERS,
            solution=refunds,
        )
        move(measured, "accept", "start_delivery")
        services.opportunity_update(opportunity=measured, actor=pm, releases=verified[:1])
        live_since = week_floor(now) - LIVE_WEEKS_AGO * WEEK
        measured = move(
            measured,
            "deliver",
            "measure",
            live_since=live_since,
            reason="The refund-status flow went live to 90% of traffic (10% control) before this release was governed "
            "here; its verified release carries the same change.",
        )
        created.append(measured)
    payouts = solutions.get("seller-payouts")
    if payouts is not None:
        in_delivery = services.opportunity_create(
            actor=pm,
            title="Explain payout delays with the payout-status tool",
            contact_reasons=["payout-delay"],
            hypothesis="Most payout-delay contacts are reserve holds or bank cut-offs that the payout-status tool "
            "can explain.",
            expected_containment_lift=0.2,
            effort_weeks=5,
            confidence=0.5,
            audience=Audience.SELLERS,
            solution=payouts,
            releases=[r for r in releases if r.solution_id == payouts.pk][:1],
        )
        created.append(move(in_delivery, "accept", "start_delivery"))
    created.append(
        services.opportunity_create(
            actor=pm,
            title="Order tracking answers for buyers",
            contact_reasons=["order-tracking", "item-not-received"],
            hypothesis="Tracking questions are answered by the carrier status; a bot with the tracking tool can "
            "answer them and open a claim when the parcel is late.",
            expected_containment_lift=0.35,
            effort_weeks=6,
            confidence=0.8,
            markets=["US", "DE"],
            audience=Audience.BUYERS,
        )
    )
    return created
