"""Releases' own guards: the rules about a release itself, whoever else takes part in its lifecycle.
Registered from ``ReleasesConfig.ready`` through ``hooks.register_lifecycle``, so they run before the guards
of governance and monitoring. Guards only read (and lock what they read); they refuse with ``GuardFailed``.
"""

from __future__ import annotations

from datetime import timedelta

from core.errors import GuardFailed

from .hooks import Hook, TransitionContext
from .services import (
    hold_time_remaining,
    human_duration,
    missing_content,
    other_release_holding_markets,
    verification_time_remaining,
)


def guard_submit_content_complete(ctx: TransitionContext) -> None:
    problems = missing_content(ctx.release)
    if problems:
        raise GuardFailed(
            "The release is not ready for review: "
            + " ".join(message for messages in problems.values() for message in messages),
            code="incomplete_release",
            extra={"problems": problems},
        )


def guard_start_rollout_markets_free(ctx: TransitionContext) -> None:
    release = ctx.release
    other = other_release_holding_markets(release)
    if other is not None:
        overlap = sorted(set(release.markets) & set(other.markets))
        raise GuardFailed(
            f"{other} is already rolling out in {', '.join(overlap)}; finish, pause-and-roll-back or verify it first.",
            code="market_busy",
            extra={"blocking_release": other.pk, "markets": overlap},
        )
    if not release.ordered_stages:
        raise GuardFailed("The release has no rollout stages.", code="no_stages")


def guard_promote_hold_time(ctx: TransitionContext) -> None:
    remaining = hold_time_remaining(ctx.release, ctx.now)
    if remaining > timedelta(0) and not ctx.override:
        stage = ctx.release.current_stage
        raise GuardFailed(
            f"Stage '{stage.name if stage else '?'}' must hold for another {human_duration(remaining)} "
            "before promotion.",
            code="hold_time",
            extra={"remaining_seconds": int(remaining.total_seconds())},
        )


def guard_complete_verification_window(ctx: TransitionContext) -> None:
    remaining = verification_time_remaining(ctx.release, ctx.now)
    if remaining > timedelta(0):
        raise GuardFailed(
            f"The verification window has {human_duration(remaining)} left.",
            code="verification_window",
            extra={"remaining_seconds": int(remaining.total_seconds())},
        )


GUARDS: dict[str, tuple[Hook, ...]] = {
    "submit": (guard_submit_content_complete,),
    "start_rollout": (guard_start_rollout_markets_free,),
    "promote": (guard_promote_hold_time,),
    "complete_verification": (guard_complete_verification_window,),
}
EFFECTS: dict[str, tuple[Hook, ...]] = {}
