"""How governance takes part in the release lifecycle: the ``GUARDS`` and ``EFFECTS`` tables at the bottom,
registered in ``releases.hooks`` from ``GovernanceConfig.ready``. Guards only read and decide (facts for the
audit event go into ``ctx.audit_data``); effects write. The gates and the transitions they block:

=============  ==============================  ===========================================================
gate           checklist instantiated on       blocks (until complete), then frozen
=============  ==============================  ===========================================================
review         ``submit`` (not emergency)      ``approve`` (with the approval policy)
rollout        ``approve``                     ``start_rollout`` (with unexpired approvals, freeze windows)
launch         ``start_rollout``               the ``promote`` that launches (from the last stage)
verification   ``begin_verification``          ``complete_verification``
retro_review   emergency ``start_rollout``,    nothing: owed within 72 hours, escalated when overdue
               or a freeze-window override
=============  ==============================  ===========================================================
"""

from __future__ import annotations

from core.errors import GuardFailed
from releases.hooks import Hook, TransitionContext
from releases.models import Release

from . import services
from .models import ChecklistGate
from .selectors import approval_policy_status, freeze_windows_blocking


def _is_launching_promotion(release: Release) -> bool:
    current = release.current_stage
    return current is None or not release.stages.filter(position__gt=current.position).exists()


# --- Guards ---------------------------------------------------------------------------------------------------


def guard_approve_policy_and_review_checklist(ctx: TransitionContext) -> None:
    """The one place that decides whether a release in review is approvable (``approval_record`` asks it)."""
    status = approval_policy_status(release=ctx.release, now=ctx.now)
    problem = None
    if not status.satisfied:
        problem = f"The approval policy is not satisfied: {status.describe_missing()}."
    elif not ctx.release.is_emergency:
        # Emergency releases skip the review checklist; they owe a retro-review instead.
        problem = services.checklist_problem(release=ctx.release, gate=ChecklistGate.REVIEW)
    if problem:
        raise GuardFailed(problem, code=services.APPROVAL_INCOMPLETE, extra={"policy_status": status.as_dict()})
    ctx.audit_data["approvals"] = {req.group: req.approvers for req in status.requirements}


def guard_start_rollout_approvals_current(ctx: TransitionContext) -> None:
    status = approval_policy_status(release=ctx.release, now=ctx.now)
    if not status.satisfied:
        raise GuardFailed(
            "The approvals no longer satisfy the policy (expired or dismissed): "
            f"{status.describe_missing()}. Ask approvers to renew them.",
            code="approvals_expired",
            extra={"policy_status": status.as_dict()},
        )


def guard_rollout_checklist(ctx: TransitionContext) -> None:
    services.checklist_gate_guard(release=ctx.release, gate=ChecklistGate.ROLLOUT)


def guard_launch_checklist(ctx: TransitionContext) -> None:
    if _is_launching_promotion(ctx.release):
        services.checklist_gate_guard(release=ctx.release, gate=ChecklistGate.LAUNCH)


def guard_verification_checklist(ctx: TransitionContext) -> None:
    services.checklist_gate_guard(release=ctx.release, gate=ChecklistGate.VERIFICATION)


def guard_freeze_windows(ctx: TransitionContext) -> None:
    """Refuses while a freeze window covers the release's markets, unless a program manager overrides it for an
    emergency release with a reason; the accepted override is noted in ``audit_data["freeze_override"]`` and
    recorded by ``effect_record_freeze_override``."""
    windows = freeze_windows_blocking(markets=list(ctx.release.markets or []), now=ctx.now)
    if not windows:
        return
    if not ctx.override:
        window = windows[0]
        scope = ", ".join(window.markets) if window.markets else "all markets"
        raise GuardFailed(
            f"Freeze window '{window.name}' ({scope}, until {window.ends_at:%Y-%m-%d %H:%M} UTC) is in force: "
            f"{window.reason} Only a program manager may override it, for an emergency release, with a reason.",
            code="freeze_window",
            extra={"freeze_windows": [w.pk for w in windows]},
        )
    services.freeze_override_check(release=ctx.release, actor=ctx.actor, reason=ctx.reason)
    ctx.audit_data["freeze_override"] = [w.pk for w in windows]


# --- Effects --------------------------------------------------------------------------------------------------


def effect_record_freeze_override(ctx: TransitionContext) -> None:
    window_ids = ctx.audit_data.get("freeze_override")
    if window_ids:
        services.freeze_override_record(
            release=ctx.release, actor=ctx.actor, window_ids=window_ids, transition=ctx.event, reason=ctx.reason
        )


def effect_owe_retro_review(ctx: TransitionContext) -> None:
    # An emergency rollout, or any freeze override, owes a retro-review within 72 hours.
    emergency_start = ctx.event == "start_rollout" and ctx.release.is_emergency
    if emergency_start or ctx.audit_data.get("freeze_override"):
        services.retro_review_owe(release=ctx.release, actor=ctx.actor)


def effect_start_review_checklist(ctx: TransitionContext) -> None:
    # Emergency releases skip the review checklist; they owe a retro-review once live instead.
    if not ctx.release.is_emergency:
        services.checklist_instantiate(release=ctx.release, gate=ChecklistGate.REVIEW, actor=ctx.actor)


def effect_pass_review_start_rollout_checklist(ctx: TransitionContext) -> None:
    services.checklist_freeze(release=ctx.release, gate=ChecklistGate.REVIEW, actor=ctx.actor)
    services.checklist_instantiate(release=ctx.release, gate=ChecklistGate.ROLLOUT, actor=ctx.actor)


def effect_pass_rollout_start_launch_checklist(ctx: TransitionContext) -> None:
    services.checklist_freeze(release=ctx.release, gate=ChecklistGate.ROLLOUT, actor=ctx.actor)
    services.checklist_instantiate(release=ctx.release, gate=ChecklistGate.LAUNCH, actor=ctx.actor)


def effect_pass_launch_checklist(ctx: TransitionContext) -> None:
    if ctx.to_state == "launched":
        services.checklist_freeze(release=ctx.release, gate=ChecklistGate.LAUNCH, actor=ctx.actor)


def effect_start_verification_checklist(ctx: TransitionContext) -> None:
    services.checklist_instantiate(release=ctx.release, gate=ChecklistGate.VERIFICATION, actor=ctx.actor)


def effect_pass_verification_checklist(ctx: TransitionContext) -> None:
    services.checklist_freeze(release=ctx.release, gate=ChecklistGate.VERIFICATION, actor=ctx.actor)


def effect_dismiss_approvals_on_content_change(ctx: TransitionContext) -> None:
    services.approvals_dismiss(release=ctx.release, actor=ctx.actor, reason="Release content changed")


def effect_dismiss_approvals_and_review_on_request_changes(ctx: TransitionContext) -> None:
    reason = f"Changes requested: {ctx.reason}" if ctx.reason else "Changes requested"
    services.approvals_dismiss(release=ctx.release, actor=ctx.actor, reason=reason)
    services.checklist_supersede(release=ctx.release, gate=ChecklistGate.REVIEW, actor=ctx.actor, reason=reason)


GUARDS: dict[str, tuple[Hook, ...]] = {
    "approve": (guard_approve_policy_and_review_checklist,),
    "start_rollout": (guard_start_rollout_approvals_current, guard_rollout_checklist, guard_freeze_windows),
    "promote": (guard_freeze_windows, guard_launch_checklist),
    "complete_verification": (guard_verification_checklist,),
}

EFFECTS: dict[str, tuple[Hook, ...]] = {
    "submit": (effect_start_review_checklist,),
    "approve": (effect_pass_review_start_rollout_checklist,),
    "start_rollout": (
        effect_record_freeze_override,
        effect_pass_rollout_start_launch_checklist,
        effect_owe_retro_review,
    ),
    "promote": (effect_record_freeze_override, effect_pass_launch_checklist, effect_owe_retro_review),
    "begin_verification": (effect_start_verification_checklist,),
    "complete_verification": (effect_pass_verification_checklist,),
    "content_changed": (effect_dismiss_approvals_on_content_change,),
    "request_changes": (effect_dismiss_approvals_and_review_on_request_changes,),
}
