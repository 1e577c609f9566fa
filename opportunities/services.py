"""Writes of the opportunities app. Every write is audited (``save_audited``: history row + AuditEvent), and the
status moves only through ``opportunity_transition`` along ``state_machine.OPPORTUNITY_LIFECYCLE``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from core.actors import Actor
from core.audit import audit_record
from core.errors import DomainValidationError, GuardFailed, IllegalTransition
from core.service_support import reject_unknown_fields, require_permission, save_audited
from core.transitions import Applied, Transition, check_role, perform_transition
from releases.choices import ReleaseStatus
from releases.models import AutomationSolution, Release

from . import selectors
from .choices import EDITABLE_STATES, TERMINAL_STATES, OpportunityStatus
from .impact import realized_impact
from .models import Opportunity, ScoringWeights
from .state_machine import ACCEPT, DELIVER, DROP, MEASURE, OPPORTUNITY_LIFECYCLE, START_DELIVERY

ADD_PERMISSION = "opportunities.add_opportunity"
CHANGE_PERMISSION = "opportunities.change_opportunity"
WEIGHTS_PERMISSION = "opportunities.change_scoringweights"

# The bet: frozen once accepted, so the outcome is compared with what was accepted.
CONTENT_FIELDS = (
    "title",
    "contact_reasons",
    "hypothesis",
    "expected_containment_lift",
    "effort_weeks",
    "confidence",
    "markets",
    "audience",
)
# Delivery links: may change while the opportunity is open.
LINK_FIELDS = ("solution", "releases")
DELIVERED_RELEASE_STATES = frozenset({ReleaseStatus.LAUNCHED, ReleaseStatus.VERIFYING, ReleaseStatus.VERIFIED})
MIN_MEASURED_WEEKS = 1.0


def _snapshot(opportunity: Opportunity) -> dict[str, Any]:
    data: dict[str, Any] = {name: getattr(opportunity, name) for name in CONTENT_FIELDS}
    data["solution"] = opportunity.solution_id
    return data


@transaction.atomic
def opportunity_create(
    *,
    actor: Actor,
    title: str,
    contact_reasons: Sequence[str],
    hypothesis: str,
    expected_containment_lift: float,
    effort_weeks: float,
    confidence: float,
    markets: Sequence[str] = (),
    audience: str = "",
    solution: AutomationSolution | None = None,
    releases: Sequence[Release] = (),
) -> Opportunity:
    require_permission(actor, ADD_PERMISSION, "propose opportunities")
    opportunity = Opportunity(
        title=title,
        contact_reasons=list(contact_reasons),
        hypothesis=hypothesis,
        expected_containment_lift=expected_containment_lift,
        effort_weeks=effort_weeks,
        confidence=confidence,
        markets=list(markets),
        audience=audience or "",
        solution=solution,
        owner=actor,
    )
    save_audited(
        opportunity, actor=actor, action="opportunity.created", to_state=opportunity.status, data=_snapshot(opportunity)
    )
    if releases:
        _link_releases(opportunity, list(releases), actor)
    return opportunity


@transaction.atomic
def opportunity_update(*, opportunity: Opportunity, actor: Actor, **fields: Any) -> Opportunity:
    """Change the bet (while proposed) or the delivery links (while open)."""
    require_permission(actor, CHANGE_PERMISSION, "change opportunities")
    reject_unknown_fields(fields, (*CONTENT_FIELDS, *LINK_FIELDS))
    locked = Opportunity.objects.select_for_update().get(pk=opportunity.pk)
    content = {name: value for name, value in fields.items() if name in CONTENT_FIELDS}
    changed_content = {name for name, value in content.items() if getattr(locked, name) != value}
    if changed_content and locked.status not in EDITABLE_STATES:
        raise DomainValidationError(
            {
                name: [f"Frozen once the opportunity is {locked.get_status_display().lower()}."]
                for name in changed_content
            }
        )
    if locked.status in TERMINAL_STATES and any(name in fields for name in LINK_FIELDS):
        raise IllegalTransition(f"A {locked.get_status_display().lower()} opportunity changes no more.")
    for name, value in content.items():
        setattr(locked, name, list(value) if name in ("contact_reasons", "markets") else value)
    if "solution" in fields:
        locked.solution = fields["solution"]
    save_audited(locked, actor=actor, action="opportunity.updated", data=_snapshot(locked))
    if "releases" in fields:
        _link_releases(locked, list(fields["releases"]), actor)
    return locked


def _link_releases(opportunity: Opportunity, releases: list[Release], actor: Actor) -> None:
    foreign = [release for release in releases if release.solution_id != opportunity.solution_id]
    if foreign:
        names = ", ".join(f"#{release.pk}" for release in foreign)
        raise DomainValidationError({"releases": [f"Releases {names} are not releases of the linked solution."]})
    before = set(opportunity.releases.values_list("pk", flat=True))
    after = {release.pk for release in releases}
    if before == after:
        return
    opportunity.releases.set(releases)
    audit_record(
        actor=actor,
        action="opportunity.releases_linked",
        obj=opportunity,
        data={"added": sorted(after - before), "removed": sorted(before - after)},
    )


@transaction.atomic
def scoring_weights_update(
    *, actor: Actor, reach: float, impact: float, confidence: float, effort: float, reason: str = ""
) -> ScoringWeights:
    require_permission(actor, WEIGHTS_PERMISSION, "change the scoring weights")
    weights, _ = ScoringWeights.objects.select_for_update().get_or_create(pk=1)
    previous = {
        "reach": weights.reach,
        "impact": weights.impact,
        "confidence": weights.confidence,
        "effort": weights.effort,
    }
    weights.reach, weights.impact, weights.confidence, weights.effort = reach, impact, confidence, effort
    save_audited(
        weights,
        actor=actor,
        action="opportunity.scoring_weights_changed",
        reason=reason,
        data={
            "previous": previous,
            "new": {"reach": reach, "impact": impact, "confidence": confidence, "effort": effort},
        },
    )
    return weights


# --- The lifecycle: one choke point ------------------------------------------------------------------------------


def check_actor_may(*, transition: Transition, actor: Actor | None) -> None:
    """The system (``None``) runs only ``system_allowed`` steps; a person needs the transition's permission."""
    check_role(transition=transition, actor=actor, noun="opportunities")


def opportunity_transition(
    *,
    opportunity: Opportunity,
    transition: str,
    actor: Actor | None,
    reason: str = "",
    live_since: datetime | None = None,
    now: datetime | None = None,
) -> Opportunity:
    """Move an opportunity through the one choke point of every lifecycle (``core.transitions``): role → lock →
    table → this transition's guards and fields (``_apply``; listed in ``state_machine.GUARDS``) → status with
    its history row and audit event, in one transaction."""
    step = OPPORTUNITY_LIFECYCLE.get(transition)
    if step is None:
        raise DomainValidationError({"transition": [f"One of {', '.join(OPPORTUNITY_LIFECYCLE.names())}."]})
    reason = (reason or "").strip()
    if step.reason_required and not reason:
        raise DomainValidationError({"reason": [f"Say why you {step.label.lower()} this opportunity."]})
    when = now or timezone.now()

    def apply(locked: Opportunity, from_state: str) -> Applied:
        data, release_id = _apply(step, locked, reason=reason, live_since=live_since, now=when)
        return Applied(target=step.target, release_id=release_id, data=data)

    return perform_transition(
        machine=OPPORTUNITY_LIFECYCLE,
        transition=step,
        actor=actor,
        reason=reason,
        noun="opportunities",
        lock=lambda: (
            Opportunity.objects.select_for_update(of=("self",)).select_related("solution").get(pk=opportunity.pk)
        ),
        refuse=lambda locked: IllegalTransition(
            f"Cannot {step.label.lower()} an opportunity that is {locked.get_status_display().lower()}.",
            extra={"status": locked.status},
        ),
        apply=apply,
    )


def opportunities_measure_due(*, now: datetime | None = None) -> list[int]:
    """Measure every delivered opportunity whose guards now allow it (a linked release verified, a week of data
    on each side), as the system; the others wait for the next sweep. Returns the ids measured."""
    measured = []
    for opportunity in Opportunity.objects.filter(status=OpportunityStatus.DELIVERED).order_by("id"):
        try:
            opportunity_transition(opportunity=opportunity, transition=MEASURE.name, actor=None, now=now)
        except GuardFailed:
            continue  # not measurable yet: no verified release, or too little data after going live
        measured.append(opportunity.pk)
    return measured


def _apply(
    step: Transition, opp: Opportunity, *, reason: str, live_since: datetime | None, now: datetime
) -> tuple[dict[str, Any], int | None]:
    """Check the transition's guards and write its fields. Returns the audit data and the release it concerns."""
    if step is ACCEPT:
        score = selectors.opportunity_score(opp)
        if score.reach <= 0:
            raise GuardFailed(
                "The targeted contact reasons have no volume in the last 4 complete weeks"
                f"{' in ' + ', '.join(opp.markets) if opp.markets else ''}: the prediction would have no reach.",
                code="no_reach",
            )
        opp.predicted_weekly_conversations = score.reach
        opp.predicted_hours_saved_per_week = score.expected_hours_saved_per_week
        opp.accepted_at = now
        return {
            "score": round(score.value, 4),
            "formula": score.formula,
            "predicted_hours_saved_per_week": round(score.expected_hours_saved_per_week, 2),
        }, None
    if step is START_DELIVERY:
        if opp.solution_id is None:
            raise GuardFailed("Link the solution that will deliver it first.", code="no_solution")
        return {"solution": opp.solution_id}, None
    if step is DELIVER:
        delivered = list(
            opp.releases.filter(solution_id=opp.solution_id, status__in=DELIVERED_RELEASE_STATES).order_by(
                "launched_at"
            )
        )
        if not delivered:
            raise GuardFailed(
                "No linked release of the solution has launched yet; link the release that delivers it.",
                code="no_launched_release",
            )
        if live_since is not None:
            if live_since > now:
                raise DomainValidationError({"live_since": ["Cannot be in the future."]})
            if not reason:
                raise DomainValidationError({"reason": ["Say why it went live at another time than its release."]})
        opp.live_since = live_since or delivered[0].launched_at or now
        opp.delivered_at = now
        return {"releases": [r.pk for r in delivered], "live_since": opp.live_since.isoformat()}, delivered[0].pk
    if step is MEASURE:
        verified = opp.releases.filter(status=ReleaseStatus.VERIFIED).order_by("closed_at").first()
        if verified is None:
            raise GuardFailed("No linked release is verified yet.", code="not_verified")
        assert opp.live_since is not None
        counts = selectors.impact_counts(opportunity=opp, live_since=opp.live_since, now=now)
        if counts.before.conversations == 0 or counts.before.weeks < MIN_MEASURED_WEEKS:
            raise GuardFailed("Less than a week of contact-reason data before it went live.", code="no_baseline")
        if counts.after.conversations == 0 or counts.after.weeks < MIN_MEASURED_WEEKS:
            raise GuardFailed(
                f"Less than a week of contact-reason data since it went live ({opp.live_since:%Y-%m-%d}).",
                code="too_early",
            )
        impact = realized_impact(before=counts.before, after=counts.after, control=counts.control)
        opp.realized_containment_lift = impact.lift.estimate
        opp.realized_hours_saved_per_week = impact.hours_saved_per_week
        opp.measurement = impact.as_dict()
        opp.measured_at = now
        return {"measurement": opp.measurement}, verified.pk
    if step is DROP:
        opp.drop_reason = reason
        return {}, None
    raise AssertionError(f"transition {step.name} has no guard entry")  # the table and this function drifted
