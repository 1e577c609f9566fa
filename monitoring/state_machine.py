"""The incident lifecycle, declared once: ``triggered → acknowledged → mitigated → resolved``.

``monitoring.services.incidents`` moves an incident along this table through one choke point; the admin's triage
buttons, the API's POST actions and ``selectors.incident_triage_actions`` are generated from it. Assigning and
commenting are not state changes: they are plain services and not in the table.
"""

from core.transitions import StateMachine, Transition

from .choices import OPEN_INCIDENT_STATES, IncidentEventKind
from .choices import IncidentStatus as S

TRIAGE_PERMISSION = "monitoring.triage_incident"

ACKNOWLEDGE = Transition("acknowledge", frozenset({S.TRIGGERED}), S.ACKNOWLEDGED, "Acknowledge", TRIAGE_PERMISSION)
MITIGATE = Transition(
    "mitigate",
    frozenset({S.TRIGGERED, S.ACKNOWLEDGED}),
    S.MITIGATED,
    "Mitigate",
    TRIAGE_PERMISSION,
    reason_required=True,
)
# The system resolves an incident whose guardrail recovered (``auto_recovered``); a person gives a reason.
RESOLVE = Transition(
    "resolve",
    frozenset(OPEN_INCIDENT_STATES),
    S.RESOLVED,
    "Resolve",
    TRIAGE_PERMISSION,
    system_allowed=True,
    reason_required=True,
)

INCIDENT_LIFECYCLE = StateMachine("incident", (ACKNOWLEDGE, MITIGATE, RESOLVE))

# What a refused step says (409), by transition; ``{status}`` is the incident's status, in words.
REFUSALS: dict[str, str] = {
    ACKNOWLEDGE.name: "Only a triggered incident can be acknowledged; this one is {status}.",
    MITIGATE.name: "Cannot mitigate an incident that is {status}.",
    RESOLVE.name: "The incident is already resolved.",
}
# The timeline entry each transition adds (the same word as its target state).
EVENT_KINDS: dict[str, str] = {
    ACKNOWLEDGE.name: IncidentEventKind.ACKNOWLEDGED,
    MITIGATE.name: IncidentEventKind.MITIGATED,
    RESOLVE.name: IncidentEventKind.RESOLVED,
}
