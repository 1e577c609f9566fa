"""The opportunity lifecycle through its one choke point: guards, audit events and history rows, refusals that
write nothing, frozen content, and the measurement of a delivered opportunity against hand-worked numbers."""

from __future__ import annotations

import pytest

from core.errors import DomainPermissionDenied, DomainValidationError, GuardFailed, IllegalTransition
from core.models import AuditEvent
from opportunities.models import Opportunity
from opportunities.services import (
    opportunities_measure_due,
    opportunity_transition,
    opportunity_update,
    scoring_weights_update,
)
from releases.choices import ReleaseStatus
from tests.factories import SolutionFactory, advance_release, make_release

from .conftest import propose, store, volume_row, weeks_ago

pytestmark = pytest.mark.django_db


def move(opportunity, *names, actor, **kwargs):
    for name in names:
        opportunity = opportunity_transition(opportunity=opportunity, transition=name, actor=actor, **kwargs)
    return opportunity


def test_accept_snapshots_the_prediction_with_audit_and_history(program_manager):
    store(*(volume_row(start=weeks_ago(week)) for week in range(1, 5)))  # 1,000 conversations/week, 10 min
    opportunity = propose(program_manager)
    accepted = move(opportunity, "accept", actor=program_manager)
    assert accepted.status == "accepted"
    # 1,000 × 0.2 × 10 / 60 = 33.3 h/week expected.
    assert accepted.predicted_weekly_conversations == pytest.approx(1000)
    assert accepted.predicted_hours_saved_per_week == pytest.approx(1000 * 0.2 * 10 / 60)
    event = AuditEvent.objects.filter(action="opportunity.accept").get()
    assert (event.from_state, event.to_state, event.actor_id) == ("proposed", "accepted", program_manager.pk)
    assert "formula" in event.data
    history = accepted.history.order_by("history_id")
    assert [h.status for h in history] == ["proposed", "accepted"]
    assert history.last().history_user_id == program_manager.pk


def test_refusals_write_nothing(program_manager, author):
    opportunity = propose(program_manager)
    events = AuditEvent.objects.count()
    with pytest.raises(GuardFailed, match="no volume"):
        move(opportunity, "accept", actor=program_manager)
    with pytest.raises(IllegalTransition):
        move(opportunity, "deliver", actor=program_manager)
    with pytest.raises(DomainPermissionDenied):
        move(opportunity, "drop", actor=author, reason="not mine")
    with pytest.raises(DomainValidationError):
        move(opportunity, "drop", actor=program_manager)
    with pytest.raises(DomainValidationError):
        move(opportunity, "teleport", actor=program_manager)
    opportunity.refresh_from_db()
    assert opportunity.status == "proposed"
    assert AuditEvent.objects.count() == events
    assert opportunity.history.count() == 1


def test_content_is_frozen_once_accepted_but_links_are_not(program_manager, author, solution):
    store(volume_row(start=weeks_ago(1)))
    opportunity = move(propose(program_manager), "accept", actor=program_manager)
    with pytest.raises(DomainValidationError) as refused:
        opportunity_update(opportunity=opportunity, actor=program_manager, expected_containment_lift=0.9)
    assert "expected_containment_lift" in refused.value.errors
    updated = opportunity_update(opportunity=opportunity, actor=program_manager, solution=solution)
    assert updated.solution_id == solution.pk
    other = make_release(author=author, solution=SolutionFactory())
    with pytest.raises(DomainValidationError, match="not releases of the linked solution"):
        opportunity_update(opportunity=opportunity, actor=program_manager, releases=[other])


def test_delivery_guards_and_the_drop(program_manager, author, solution):
    store(volume_row(start=weeks_ago(1)))
    opportunity = move(propose(program_manager), "accept", actor=program_manager)
    with pytest.raises(GuardFailed, match="solution"):
        move(opportunity, "start_delivery", actor=program_manager)
    opportunity = opportunity_update(
        opportunity=opportunity,
        actor=program_manager,
        solution=solution,
        releases=[make_release(author=author, solution=solution)],
    )
    opportunity = move(opportunity, "start_delivery", actor=program_manager)
    with pytest.raises(GuardFailed, match="launched"):
        move(opportunity, "deliver", actor=program_manager)
    dropped = move(opportunity, "drop", actor=program_manager, reason="The carrier API is being replaced.")
    assert (dropped.status, dropped.drop_reason) == ("dropped", "The carrier API is being replaced.")
    with pytest.raises(IllegalTransition):
        opportunity_update(opportunity=dropped, actor=program_manager, releases=[])


def test_measure_a_delivered_opportunity_by_hand(program_manager, author, solution):
    release = advance_release(
        make_release(author=author, solution=solution),
        ReleaseStatus.VERIFIED,
        program_manager=program_manager,
    )
    # Before (4 weeks): 1,000 conversations, 600 handed off at 10 min, 50 abandoned → containment 35%.
    # After (3 weeks): 1,100 conversations, 495 handed off at 9 min, 55 abandoned → containment 50%.
    # Hours saved/week = (0.60 − 0.45) × 1,100 × 10 / 60 = 27.5.
    store(*(volume_row(start=weeks_ago(week)) for week in range(4, 8)))
    store(*(volume_row(start=weeks_ago(w), conversations=1100, handed=495, abandoned=55, minutes=9) for w in (1, 2, 3)))
    opportunity = move(
        propose(program_manager, solution=solution, releases=[release]),
        "accept",
        "start_delivery",
        actor=program_manager,
    )
    with pytest.raises(DomainValidationError, match="reason"):
        move(opportunity, "deliver", actor=program_manager, live_since=weeks_ago(3))
    delivered = move(
        opportunity,
        "deliver",
        actor=program_manager,
        live_since=weeks_ago(3),
        reason="Live before the release was governed here.",
    )
    assert delivered.live_since == weeks_ago(3)
    # The hourly sweep measures it as the system, once; a second sweep finds nothing left to measure.
    assert opportunities_measure_due() == [delivered.pk]
    assert opportunities_measure_due() == []
    measured = Opportunity.objects.get(pk=delivered.pk)
    assert measured.status == "measured"
    assert measured.realized_containment_lift == pytest.approx(0.15)
    assert measured.realized_hours_saved_per_week == pytest.approx(27.5)
    assert measured.measurement["before"]["weeks"] == 4.0
    assert measured.measurement["after"]["weeks"] == 3.0
    assert measured.measurement["basis"] == "before_after"
    event = AuditEvent.objects.get(action="opportunity.measure")
    assert event.release_id == release.pk and event.actor_id is None


def test_measure_waits_for_a_verified_release_and_data(program_manager, author, solution):
    release = advance_release(
        make_release(author=author, solution=solution), ReleaseStatus.LAUNCHED, program_manager=program_manager
    )
    store(volume_row(start=weeks_ago(1)))
    opportunity = move(
        propose(program_manager, solution=solution, releases=[release]),
        "accept",
        "start_delivery",
        "deliver",
        actor=program_manager,
    )
    assert opportunity.live_since == release.launched_at
    with pytest.raises(GuardFailed, match="verified"):
        move(opportunity, "measure", actor=program_manager)
    assert opportunities_measure_due() == []  # the sweep leaves it for later
    assert Opportunity.objects.get(pk=opportunity.pk).status == "delivered"


def test_scoring_weights_are_audited_and_owned_by_program_managers(program_manager, author):
    with pytest.raises(DomainPermissionDenied):
        scoring_weights_update(actor=author, reach=1, impact=1, confidence=2, effort=1)
    weights = scoring_weights_update(
        actor=program_manager, reach=1, impact=1, confidence=2, effort=1, reason="Favour sure bets this quarter"
    )
    assert str(weights) == "R^1 × I^1 × C^2 ÷ E^1"
    event = AuditEvent.objects.get(action="opportunity.scoring_weights_changed")
    assert event.data["previous"]["confidence"] == 1.0 and event.reason == "Favour sure bets this quarter"
    with pytest.raises(DomainValidationError):
        scoring_weights_update(actor=program_manager, reach=1, impact=1, confidence=9, effort=1)
