"""The release lifecycle, declared once.

Each transition names the states it starts from and the state it leads to. ``releases.services`` holds the one
service per transition that moves a release along this table; nothing else writes ``Release.status``.
"""

from core.transitions import StateMachine, Transition

from .choices import ReleaseStatus as S

SUBMIT = Transition("submit", frozenset({S.DRAFT}), S.IN_REVIEW, "Submit for review", "releases.submit_release")
REQUEST_CHANGES = Transition(
    "request_changes",
    frozenset({S.IN_REVIEW}),
    S.DRAFT,
    "Request changes",
    "releases.review_release",
    reason_required=True,
)
REJECT = Transition(
    "reject",
    frozenset({S.IN_REVIEW}),
    S.REJECTED,
    "Reject",
    "releases.review_release",
    reason_required=True,
    dangerous=True,
)
APPROVE = Transition("approve", frozenset({S.IN_REVIEW}), S.APPROVED, "Approve", "releases.approve_release")
CANCEL = Transition(
    "cancel",
    frozenset({S.DRAFT, S.IN_REVIEW, S.APPROVED}),
    S.CANCELLED,
    "Cancel",
    "releases.manage_rollout",
    reason_required=True,
    dangerous=True,
)
START_ROLLOUT = Transition(
    "start_rollout",
    frozenset({S.APPROVED}),
    S.ROLLING_OUT,
    "Start rollout",
    "releases.manage_rollout",
    overridable=True,
)
# ``promote`` moves to the next stage and stays ``rolling_out``; from the last stage it launches.
PROMOTE = Transition(
    "promote",
    frozenset({S.ROLLING_OUT}),
    S.ROLLING_OUT,
    "Promote",
    "releases.manage_rollout",
    system_allowed=True,
    overridable=True,
)
PAUSE = Transition(
    "pause",
    frozenset({S.ROLLING_OUT}),
    S.PAUSED,
    "Pause",
    "releases.emergency_stop",
    system_allowed=True,
    reason_required=True,
    dangerous=True,
)
RESUME = Transition("resume", frozenset({S.PAUSED}), S.ROLLING_OUT, "Resume", "releases.manage_rollout")
ROLLBACK = Transition(
    "rollback",
    frozenset({S.ROLLING_OUT, S.PAUSED, S.LAUNCHED, S.VERIFYING}),
    S.ROLLED_BACK,
    "Roll back",
    "releases.emergency_stop",
    system_allowed=True,
    reason_required=True,
    dangerous=True,
)
BEGIN_VERIFICATION = Transition(
    "begin_verification",
    frozenset({S.LAUNCHED}),
    S.VERIFYING,
    "Begin verification",
    "releases.manage_rollout",
    system_allowed=True,
)
COMPLETE_VERIFICATION = Transition(
    "complete_verification",
    frozenset({S.VERIFYING}),
    S.VERIFIED,
    "Complete verification",
    "releases.manage_rollout",
    system_allowed=True,
    # A person may override the guardrails (e.g. a metric that never reached its minimum) with a reason; the
    # verification window itself is never waived.
    overridable=True,
)

RELEASE_LIFECYCLE = StateMachine(
    "release",
    (
        SUBMIT,
        REQUEST_CHANGES,
        REJECT,
        APPROVE,
        CANCEL,
        START_ROLLOUT,
        PROMOTE,
        PAUSE,
        RESUME,
        ROLLBACK,
        BEGIN_VERIFICATION,
        COMPLETE_VERIFICATION,
    ),
)
TRANSITIONS: dict[str, Transition] = {t.name: t for t in RELEASE_LIFECYCLE}


def transitions_from(status: str) -> list[Transition]:
    return RELEASE_LIFECYCLE.transitions_from(status)
