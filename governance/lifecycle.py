"""How governance takes part in the release lifecycle: guards and effects registered in ``releases.hooks``
(from ``GovernanceConfig.ready``). The gates and the transitions they block:

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
from releases import hooks
from releases.hooks import TransitionContext
from releases.models import Release

from . import services
from .models import ChecklistGate
from .selectors import approval_policy_status, freeze_windows_blocking


def _is_launching_promotion(release: Release) -> bool:
    current = release.current_stage
    return current is None or not release.stages.filter(position__gt=current.position).exists()


# --- Guards ---------------------------------------------------------------------------------------------------


@hooks.register_guard("approve")
def guard_approve(ctx: TransitionContext) -> None:
    problem = services.review_gate_problem(release=ctx.release, now=ctx.now)
    if problem:
        status = approval_policy_status(release=ctx.release, now=ctx.now)
        raise GuardFailed(problem, code="approval_incomplete", extra={"policy_status": status.as_dict()})
    status = approval_policy_status(release=ctx.release, now=ctx.now)
    ctx.audit_data["approvals"] = {req.group: req.approvers for req in status.requirements}


@hooks.register_guard("start_rollout")
def guard_start_rollout(ctx: TransitionContext) -> None:
    status = approval_policy_status(release=ctx.release, now=ctx.now)
    if not status.satisfied:
        raise GuardFailed(
            "The approvals no longer satisfy the policy (expired or dismissed): "
            f"{status.describe_missing()}. Ask approvers to renew them.",
            code="approvals_expired",
            extra={"policy_status": status.as_dict()},
        )
    services.checklist_gate_guard(release=ctx.release, gate=ChecklistGate.ROLLOUT)
    _guard_freeze(ctx)


@hooks.register_guard("promote")
def guard_promote(ctx: TransitionContext) -> None:
    _guard_freeze(ctx)
    if _is_launching_promotion(ctx.release):
        services.checklist_gate_guard(release=ctx.release, gate=ChecklistGate.LAUNCH)


@hooks.register_guard("complete_verification")
def guard_complete_verification(ctx: TransitionContext) -> None:
    services.checklist_gate_guard(release=ctx.release, gate=ChecklistGate.VERIFICATION)


def _guard_freeze(ctx: TransitionContext) -> None:
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
    services.freeze_override_record(
        release=ctx.release, actor=ctx.actor, windows=windows, transition=ctx.event, reason=ctx.reason
    )
    ctx.audit_data["freeze_override"] = [w.pk for w in windows]


# --- Effects --------------------------------------------------------------------------------------------------


@hooks.register_effect("submit")
def on_submit(ctx: TransitionContext) -> None:
    # Emergency releases skip the review checklist; they owe a retro-review once live instead.
    if not ctx.release.is_emergency:
        services.checklist_instantiate(release=ctx.release, gate=ChecklistGate.REVIEW, actor=ctx.actor)


@hooks.register_effect("approve")
def on_approve(ctx: TransitionContext) -> None:
    services.checklist_freeze(release=ctx.release, gate=ChecklistGate.REVIEW, actor=ctx.actor)
    services.checklist_instantiate(release=ctx.release, gate=ChecklistGate.ROLLOUT, actor=ctx.actor)


@hooks.register_effect("start_rollout")
def on_start_rollout(ctx: TransitionContext) -> None:
    services.checklist_freeze(release=ctx.release, gate=ChecklistGate.ROLLOUT, actor=ctx.actor)
    services.checklist_instantiate(release=ctx.release, gate=ChecklistGate.LAUNCH, actor=ctx.actor)
    if ctx.release.is_emergency or ctx.audit_data.get("freeze_override"):
        services.retro_review_owe(release=ctx.release, actor=ctx.actor)


@hooks.register_effect("promote")
def on_promote(ctx: TransitionContext) -> None:
    if ctx.to_state == "launched":
        services.checklist_freeze(release=ctx.release, gate=ChecklistGate.LAUNCH, actor=ctx.actor)
    if ctx.audit_data.get("freeze_override"):
        services.retro_review_owe(release=ctx.release, actor=ctx.actor)


@hooks.register_effect("begin_verification")
def on_begin_verification(ctx: TransitionContext) -> None:
    services.checklist_instantiate(release=ctx.release, gate=ChecklistGate.VERIFICATION, actor=ctx.actor)


@hooks.register_effect("complete_verification")
def on_complete_verification(ctx: TransitionContext) -> None:
    services.checklist_freeze(release=ctx.release, gate=ChecklistGate.VERIFICATION, actor=ctx.actor)


@hooks.register_effect(hooks.CONTENT_CHANGED)
def on_content_changed(ctx: TransitionContext) -> None:
    services.approvals_dismiss(release=ctx.release, actor=ctx.actor, reason="Release content changed")


@hooks.register_effect("request_changes")
def on_request_changes(ctx: TransitionContext) -> None:
    reason = f"Changes requested: {ctx.reason}" if ctx.reason else "Changes requested"
    services.approvals_dismiss(release=ctx.release, actor=ctx.actor, reason=reason)
    services.checklist_supersede(release=ctx.release, gate=ChecklistGate.REVIEW, actor=ctx.actor, reason=reason)
