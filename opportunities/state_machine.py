"""The opportunity lifecycle, declared once:

    proposed ──accept──▶ accepted ──start_delivery──▶ in_delivery ──deliver──▶ delivered ──measure──▶ measured
        └──────────────────┴──────────────drop──────────────┴─────────────────────┘──▶ dropped

``opportunities.services.opportunity_transition`` is the only code that changes ``status``; the admin's buttons
and the API's POST actions are generated from this table. Each transition's guards are listed in ``GUARDS``
(and checked in ``opportunities.services._check_guards``), so they can be read in one place.
"""

from core.transitions import StateMachine, Transition

from .choices import OpportunityStatus as S

MANAGE_PERMISSION = "opportunities.change_opportunity"

ACCEPT = Transition("accept", frozenset({S.PROPOSED}), S.ACCEPTED, "Accept", MANAGE_PERMISSION)
START_DELIVERY = Transition(
    "start_delivery", frozenset({S.ACCEPTED}), S.IN_DELIVERY, "Start delivery", MANAGE_PERMISSION
)
DELIVER = Transition("deliver", frozenset({S.IN_DELIVERY}), S.DELIVERED, "Mark delivered", MANAGE_PERMISSION)
# The system may measure (a scheduled sweep); a person may too, once the data is there.
MEASURE = Transition(
    "measure", frozenset({S.DELIVERED}), S.MEASURED, "Measure impact", MANAGE_PERMISSION, system_allowed=True
)
DROP = Transition(
    "drop",
    frozenset({S.PROPOSED, S.ACCEPTED, S.IN_DELIVERY, S.DELIVERED}),
    S.DROPPED,
    "Drop",
    MANAGE_PERMISSION,
    reason_required=True,
    dangerous=True,
)

OPPORTUNITY_LIFECYCLE = StateMachine("opportunity", (ACCEPT, START_DELIVERY, DELIVER, MEASURE, DROP))

GUARDS: dict[str, str] = {
    ACCEPT.name: "The targeted contact reasons have volume in the last 4 weeks (the prediction needs a reach).",
    START_DELIVERY.name: "A solution is linked.",
    DELIVER.name: "A linked release of the solution is launched, verifying or verified.",
    MEASURE.name: "A linked release is verified, and at least one week of contact-reason data exists after "
    "live_since and before it.",
    DROP.name: "A reason is given.",
}
