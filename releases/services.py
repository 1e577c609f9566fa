"""Every write to solutions, releases and stages. One service per lifecycle transition; nothing else writes
``Release.status``.

Each transition, in one transaction: locks the release row, checks the state table, the actor's permission and
the guards (declared in ``releases/lifecycle.py`` and the other apps' ``lifecycle.py``, run through
``releases.hooks``), writes the new state, writes the audit event, runs the registered effects; work outside the
database goes through ``transaction.on_commit``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from core.audit import audit_record
from core.errors import (
    ContentFrozen,
    DomainError,
    DomainPermissionDenied,
    DomainValidationError,
    IllegalTransition,
)
from core.service_support import (
    record_actor,
    reject_unknown_fields,
    require_permission,
    save_audited,
    validate_model,
)
from core.transitions import Applied, perform_transition

from . import hooks
from .choices import EDITABLE_STATES, IN_ROLLOUT_STATES, ReleaseStatus
from .markets import known_markets
from .models import CONTENT_CREATED, CONTENT_EDITED, AutomationSolution, Release, RolloutStage
from .selectors import check_duties, release_owner_ids
from .state_machine import (
    APPROVE,
    BEGIN_VERIFICATION,
    CANCEL,
    COMPLETE_VERIFICATION,
    PAUSE,
    PROMOTE,
    REJECT,
    RELEASE_LIFECYCLE,
    REQUEST_CHANGES,
    RESUME,
    ROLLBACK,
    START_ROLLOUT,
    SUBMIT,
    Transition,
)

if TYPE_CHECKING:
    from core.actors import Actor

RELEASE_CONTENT_FIELDS = (
    "system_prompt",
    "resolution_flow",
    "model_name",
    "model_parameters",
    "tools",
    "knowledge_base_version",
    "markets",
)
# Descriptive fields: editable in draft like content, but not hashed (they do not change what customers see).
RELEASE_DESCRIPTIVE_FIELDS = ("title", "change_summary", "risk_level", "is_emergency", "auto_promote")
RELEASE_EDITABLE_FIELDS = RELEASE_CONTENT_FIELDS + RELEASE_DESCRIPTIVE_FIELDS + ("verification_window",)
# Written only by the services as the release moves; shown read-only everywhere.
RELEASE_LIFECYCLE_FIELDS = (
    "version",
    "content_hash",
    "author",
    "last_editor",
    "created_at",
    "updated_at",
    "submitted_at",
    "approved_at",
    "rollout_started_at",
    "launched_at",
    "verification_started_at",
    "closed_at",
)


# Durations a person can mean: anything outside is a typo or an attack (a 999999999-day hold overflows the
# datetime arithmetic of the guards), refused with the field's name.
VERIFICATION_WINDOW_MIN = timedelta(minutes=5)
VERIFICATION_WINDOW_MAX = timedelta(days=90)
MIN_HOLD_MAX = timedelta(days=90)


@dataclass(frozen=True)
class StageSpec:
    name: str
    traffic_percent: int
    markets: Sequence[str] = ()
    min_hold: timedelta = timedelta(hours=1)
    min_sample_size: int = 0


# --- Solutions ----------------------------------------------------------------------------------------------


@transaction.atomic
def solution_create(
    *,
    actor: Actor,
    key: str,
    name: str,
    audience: str,
    description: str = "",
    owner: Actor | None = None,
    is_active: bool = True,
) -> AutomationSolution:
    require_permission(actor, "releases.add_automationsolution", "create solutions")
    solution = AutomationSolution(
        key=key, name=name, audience=audience, description=description, owner=owner, is_active=is_active
    )
    validate_model(solution)
    save_audited(
        solution,
        actor=actor,
        action="solution.created",
        data={"key": key, "name": name},
        reason="Created",
        validate=False,
    )
    return solution


@transaction.atomic
def solution_update(*, solution: AutomationSolution, actor: Actor, **fields: Any) -> AutomationSolution:
    require_permission(actor, "releases.change_automationsolution", "edit solutions")
    allowed = {"name", "description", "audience", "owner", "is_active"}
    reject_unknown_fields(fields, allowed)
    solution = AutomationSolution.objects.select_for_update().get(pk=solution.pk)
    changed = {}
    for field, value in fields.items():
        if getattr(solution, field) != value:
            changed[field] = str(value)
            setattr(solution, field, value)
    if not changed:
        return solution
    validate_model(solution)
    save_audited(
        solution, actor=actor, action="solution.updated", data={"changed": changed}, reason="Edited", validate=False
    )
    return solution


# --- Release content ----------------------------------------------------------------------------------------


def validate_stage_plan(*, markets: Sequence[str], stages: Sequence[StageSpec], complete: bool) -> dict[str, list[str]]:
    """Problems of a rollout plan, by field. ``complete`` also demands a finished plan (as ``submit`` does)."""
    problems: list[str] = []
    if complete and not stages:
        problems.append("Define at least one rollout stage.")
    previous = 0
    for index, stage in enumerate(stages, start=1):
        label = f"Stage {index} ({stage.name or 'unnamed'})"
        if not stage.name.strip():
            problems.append(f"Stage {index} needs a name.")
        if not 1 <= stage.traffic_percent <= 100:
            problems.append(f"{label}: traffic percent must be between 1 and 100.")
        elif stage.traffic_percent <= previous:
            problems.append(f"{label}: traffic percent must be higher than the stage before ({previous}%).")
        previous = max(previous, stage.traffic_percent)
        unknown = sorted(code[:20] for code in set(stage.markets) - known_markets() if isinstance(code, str))
        if unknown:
            problems.append(f"{label}: unknown market code(s) {', '.join(map(repr, unknown))}.")
        outside = sorted(set(stage.markets) - set(markets) - set(unknown))
        if outside:
            problems.append(f"{label}: markets {', '.join(outside)} are not markets of the release.")
        if not timedelta(0) <= stage.min_hold <= MIN_HOLD_MAX:
            problems.append(f"{label}: minimum hold must be between 0 and {MIN_HOLD_MAX.days} days.")
        if stage.min_sample_size < 0:
            problems.append(f"{label}: minimum sample size cannot be negative.")
    if complete and stages and stages[-1].traffic_percent != 100:
        problems.append("The last stage must send 100% of traffic.")
    return {"stages": problems} if problems else {}


def validate_verification_window(window: Any) -> None:
    if not isinstance(window, timedelta) or not VERIFICATION_WINDOW_MIN <= window <= VERIFICATION_WINDOW_MAX:
        raise DomainValidationError(
            {
                "verification_window": [
                    f"The verification window must be between {int(VERIFICATION_WINDOW_MIN.total_seconds() // 60)} "
                    f"minutes and {VERIFICATION_WINDOW_MAX.days} days."
                ]
            }
        )


def _write_stages(release: Release, stages: Sequence[StageSpec], actor: Actor, reason: str) -> None:
    existing = {stage.position: stage for stage in release.stages.all()}
    for position, spec in enumerate(stages, start=1):
        stage = existing.pop(position, None) or RolloutStage(release=release, position=position)
        stage.name = spec.name
        stage.traffic_percent = spec.traffic_percent
        stage.markets = list(spec.markets)
        stage.min_hold = spec.min_hold
        stage.min_sample_size = spec.min_sample_size
        validate_model(stage, exclude=["release"])
        record_actor(stage, actor, reason)
        stage.save()
    for leftover in existing.values():
        # Only a draft's plan shrinks; the historical row keeps what the stage was.
        record_actor(leftover, actor, reason)
        leftover.delete()


@transaction.atomic
def release_create(
    *,
    actor: Actor,
    solution: AutomationSolution,
    title: str,
    stages: Sequence[StageSpec] = (),
    co_authors: Sequence[Actor] = (),
    based_on: Release | None = None,
    **fields: Any,
) -> Release:
    require_permission(actor, "releases.add_release", "create releases")
    reject_unknown_fields(fields, RELEASE_EDITABLE_FIELDS)
    # Lock the solution so two releases created at once get distinct version numbers.
    solution = AutomationSolution.objects.select_for_update().get(pk=solution.pk)
    if not solution.is_active:
        raise DomainValidationError({"solution": ["This solution is archived; reactivate it first."]})
    release = Release(solution=solution, title=title, author=actor, last_editor=actor, **fields)
    release.version = (solution.releases.aggregate(v=Max("version"))["v"] or 0) + 1
    validate_verification_window(release.verification_window)
    problems = validate_stage_plan(markets=release.markets or [], stages=stages, complete=False)
    if problems:
        raise DomainValidationError(problems)
    release.content_hash = release.compute_content_hash(stages=[])
    validate_model(release, exclude=["content_hash", "version"])
    record_actor(release, actor, CONTENT_CREATED)
    release.save()
    _write_stages(release, stages, actor, CONTENT_CREATED)
    if co_authors:
        release.co_authors.set(_co_author_ids(co_authors, author_id=actor.pk))
    release.content_hash = release.compute_content_hash()
    save_audited(
        release,
        actor=actor,
        action="release.created",
        release_id=release.pk,
        to_state=release.status,
        data={
            "version": release.version,
            "content_hash": release.content_hash,
            "co_authors": sorted(release.co_authors.values_list("id", flat=True)),
            **({"based_on": {"release": based_on.pk, "version": based_on.version}} if based_on else {}),
        },
        reason=CONTENT_CREATED,
        update_fields=["content_hash"],
        validate=False,
    )
    hooks.run_effects(hooks.TransitionContext(release=release, event=hooks.CREATED, actor=actor, now=timezone.now()))
    return release


@transaction.atomic
def release_new_version(*, release: Release, actor: Actor) -> Release:
    """A new draft of the solution carrying ``release``'s content and stage plan, so an author edits what is live
    instead of retyping it; its diff against ``release`` is empty until edited. The actor becomes its author (a
    content writer: they never approve it)."""
    source = Release.objects.with_related().get(pk=release.pk)
    stages = _specs_of(source)
    content = {name: getattr(source, name) for name in RELEASE_CONTENT_FIELDS}
    return release_create(
        actor=actor,
        solution=source.solution,
        title=source.title,
        change_summary=f"Based on v{source.version}.",
        risk_level=source.risk_level,
        is_emergency=False,
        auto_promote=source.auto_promote,
        verification_window=source.verification_window,
        stages=stages,
        based_on=source,
        **content,
    )


@transaction.atomic
def release_update(
    *,
    release: Release,
    actor: Actor,
    stages: Sequence[StageSpec] | None = None,
    **fields: Any,
) -> Release:
    """Edit a draft. Any material change (content or stages) changes ``content_hash`` and dismisses
    approvals through the ``content_changed`` effects; the actor becomes the last editor. Only the author and
    co-authors edit a draft (a program manager reassigns it with ``release_reassign`` instead)."""
    require_permission(actor, "releases.change_release", "edit releases")
    reject_unknown_fields(fields, RELEASE_EDITABLE_FIELDS)
    release = Release.objects.select_for_update().get(pk=release.pk)
    require_owner(release=release, actor=actor, doing="edit")
    if release.status not in EDITABLE_STATES:
        raise ContentFrozen(
            f"Release content is frozen in status '{release.status}'; only drafts can be edited.",
            extra={"status": release.status},
        )
    for field, value in fields.items():
        setattr(release, field, value)
    validate_verification_window(release.verification_window)
    stage_specs = stages if stages is not None else _specs_of(release)
    problems = validate_stage_plan(markets=release.markets or [], stages=stage_specs, complete=False)
    if problems:
        raise DomainValidationError(problems)
    validate_model(release, exclude=["content_hash", "version"])
    old_hash = release.content_hash
    if stages is not None:
        _write_stages(release, stages, actor, CONTENT_EDITED)
    release.content_hash = release.compute_content_hash()
    release.last_editor = actor
    record_actor(release, actor, CONTENT_EDITED)
    release.save()
    changed_content = release.content_hash != old_hash
    audit_record(
        actor=actor,
        action="release.updated",
        obj=release,
        release_id=release.pk,
        data={"fields": sorted(fields), "stages_changed": stages is not None, "content_hash": release.content_hash},
    )
    if changed_content:
        hooks.run_effects(
            hooks.TransitionContext(
                release=release,
                event=hooks.CONTENT_CHANGED,
                actor=actor,
                now=timezone.now(),
                reason="Release content changed",
                audit_data={"old_hash": old_hash, "new_hash": release.content_hash},
            )
        )
    return release


def require_owner(*, release: Release, actor: Actor, doing: str) -> None:
    if actor.pk not in release_owner_ids(release):
        raise DomainPermissionDenied(
            f"Only the release's author or a co-author may {doing} it; a program manager can reassign it.",
            code="not_release_owner",
        )


def _co_author_ids(users: Sequence[Actor], *, author_id: int) -> list[int]:
    ids = sorted({user.pk for user in users} - {author_id})
    unable = [user for user in users if not user.has_perm("releases.change_release")]  # type: ignore[attr-defined]
    if unable:
        names = ", ".join(sorted(str(user) for user in unable))
        raise DomainValidationError({"co_authors": [f"Co-authors must be able to edit releases: {names}."]})
    return ids


@transaction.atomic
def release_reassign(
    *, release: Release, actor: Actor, author: Actor | None = None, co_authors: Sequence[Actor] | None = None
) -> Release:
    """Change who owns a release: a program manager may name a new author and co-authors; the author may name
    co-authors. Ownership is who may edit and submit the draft; it never makes anyone an approver, and whoever
    already wrote content stays excluded from approving it (separation of duties reads the history)."""
    release = Release.objects.select_for_update().get(pk=release.pk)
    is_manager = actor.has_perm("releases.manage_rollout")  # type: ignore[attr-defined]
    if not is_manager and (author is not None or actor.pk != release.author_id):
        raise DomainPermissionDenied(
            "Only a program manager may reassign a release; its author may name co-authors.",
            code="not_release_owner",
        )
    if release.status not in EDITABLE_STATES:
        raise ContentFrozen(f"Only a draft is reassigned; this release is {release.status}.")
    before = {"author": release.author_id, "co_authors": sorted(release.co_authors.values_list("id", flat=True))}
    if author is not None and author.pk != release.author_id:
        if not author.has_perm("releases.change_release"):  # type: ignore[attr-defined]
            raise DomainValidationError({"author": [f"{author} cannot edit releases."]})
        release.author = author  # type: ignore[assignment]
    if co_authors is not None:
        release.co_authors.set(_co_author_ids(co_authors, author_id=release.author_id))
    after = {"author": release.author_id, "co_authors": sorted(release.co_authors.values_list("id", flat=True))}
    if after == before:
        return release
    save_audited(
        release,
        actor=actor,
        action="release.reassigned",
        reason="Ownership changed",
        release_id=release.pk,
        data={"before": before, "after": after},
        validate=False,
    )
    return release


def _specs_of(release: Release) -> list[StageSpec]:
    return [
        StageSpec(
            name=stage.name,
            traffic_percent=stage.traffic_percent,
            markets=tuple(stage.markets),
            min_hold=stage.min_hold,
            min_sample_size=stage.min_sample_size,
        )
        for stage in release.ordered_stages
    ]


def missing_content(release: Release) -> dict[str, list[str]]:
    """What ``submit`` still needs, by field; empty when the release is complete."""
    problems: dict[str, list[str]] = {}
    required = {
        "title": "A title is required.",
        "system_prompt": "The prompt / system instructions are required.",
        "model_name": "The model is required.",
        "markets": "At least one market is required.",
    }
    for field, message in required.items():
        value = getattr(release, field)
        if not (value.strip() if isinstance(value, str) else value):
            problems[field] = [message]
    problems.update(validate_stage_plan(markets=release.markets or [], stages=_specs_of(release), complete=True))
    return problems


# --- Transitions --------------------------------------------------------------------------------------------

Mutation = Callable[[Release, hooks.TransitionContext], None]


def _transition(
    *,
    release: Release,
    transition: Transition,
    actor: Actor | None,
    reason: str = "",
    override: bool = False,
    mutate: Mutation | None = None,
    audit_data: dict[str, Any] | None = None,
    expect: Callable[[Release], None] | None = None,
) -> Release:
    reason = (reason or "").strip()

    def apply(locked: Release, from_state: str) -> Applied:
        if actor is not None:
            check_duties(transition=transition, release=locked, actor=actor)
        if expect is not None:
            # Compare-and-set: the caller names what it saw (e.g. the stage it promotes from) and it must hold.
            expect(locked)
        context = hooks.TransitionContext(
            release=locked,
            event=transition.name,
            actor=actor,
            now=timezone.now(),
            reason=reason,
            override=override,
            transition=transition,
            from_state=from_state,
            to_state=transition.target,
            audit_data=dict(audit_data or {}),
        )
        # Every guard, releases' own included, is declared in an app's lifecycle.py (manage.py lifecycle lists them).
        hooks.run_guards(context)
        if mutate is not None:
            mutate(locked, context)
        return Applied(
            target=context.to_state,
            release_id=locked.pk,
            data={"content_hash": locked.content_hash, "override": override, **context.audit_data},
            effects=lambda: hooks.run_effects(context),
        )

    def refuse(locked: Release) -> IllegalTransition:
        return IllegalTransition(
            f"Cannot {transition.label.lower()} a release that is {locked.get_status_display().lower()}.",
            extra={"status": locked.status, "transition": transition.name},
        )

    return perform_transition(
        machine=RELEASE_LIFECYCLE,
        transition=transition,
        actor=actor,
        reason=reason,
        reason_required=transition.reason_required or override,
        noun="a release",
        lock=lambda: Release.objects.select_for_update(of=("self",)).select_related("solution").get(pk=release.pk),
        refuse=refuse,
        apply=apply,
    )


def _close(release: Release, context: hooks.TransitionContext) -> None:
    release.closed_at = context.now


def release_submit(*, release: Release, actor: Actor) -> Release:
    def mutate(locked: Release, context: hooks.TransitionContext) -> None:
        locked.submitted_at = context.now

    return _transition(release=release, transition=SUBMIT, actor=actor, mutate=mutate)


def release_request_changes(*, release: Release, actor: Actor, reason: str) -> Release:
    def mutate(locked: Release, context: hooks.TransitionContext) -> None:
        locked.submitted_at = None

    return _transition(release=release, transition=REQUEST_CHANGES, actor=actor, reason=reason, mutate=mutate)


def release_reject(*, release: Release, actor: Actor, reason: str) -> Release:
    return _transition(release=release, transition=REJECT, actor=actor, reason=reason, mutate=_close)


def release_approve(*, release: Release, actor: Actor | None, reason: str = "") -> Release:
    """Move a release in review to ``approved``. Guards registered by governance decide whether it may."""

    def mutate(locked: Release, context: hooks.TransitionContext) -> None:
        locked.approved_at = context.now

    return _transition(release=release, transition=APPROVE, actor=actor, reason=reason, mutate=mutate)


def release_cancel(*, release: Release, actor: Actor, reason: str) -> Release:
    return _transition(release=release, transition=CANCEL, actor=actor, reason=reason, mutate=_close)


def other_release_holding_markets(release: Release) -> Release | None:
    # The solution row is locked first, so two releases of one solution never start at the same moment.
    AutomationSolution.objects.select_for_update().get(pk=release.solution_id)
    markets = set(release.markets)
    others = Release.objects.filter(solution_id=release.solution_id, status__in=IN_ROLLOUT_STATES).exclude(
        pk=release.pk
    )
    for other in others:
        if markets & set(other.markets):
            return other
    return None


def release_start_rollout(*, release: Release, actor: Actor, reason: str = "", override: bool = False) -> Release:
    """Start the first stage. ``override`` (with a reason) is the emergency override governance may accept
    for a freeze window; it never bypasses the one-rollout-per-market rule."""

    def mutate(locked: Release, context: hooks.TransitionContext) -> None:
        first = locked.ordered_stages[0]  # type: ignore[index]
        _start_stage(locked, first, context)
        locked.rollout_started_at = context.now

    return _transition(
        release=release,
        transition=START_ROLLOUT,
        actor=actor,
        reason=reason,
        override=override,
        mutate=mutate,
    )


def _start_stage(release: Release, stage: RolloutStage, context: hooks.TransitionContext) -> None:
    stage.started_at = context.now
    record_actor(stage, context.actor, f"Stage started: {context.event}")
    stage.save(update_fields=["started_at"])
    release.current_stage = stage
    release.stage_started_at = context.now
    context.audit_data["stage"] = {"position": stage.position, "name": stage.name, "percent": stage.traffic_percent}


def hold_time_remaining(release: Release, now: Any = None) -> timedelta:
    stage = release.current_stage
    if stage is None or release.stage_started_at is None:
        return timedelta(0)
    now = now or timezone.now()
    return max(timedelta(0), release.stage_started_at + stage.min_hold - now)


def release_promote(
    *,
    release: Release,
    actor: Actor | None,
    reason: str = "",
    override: bool = False,
    from_stage: int | None = None,
) -> Release:
    """Move to the next stage, or launch from the last one. ``override`` (program manager, with a reason)
    skips the hold time and lets guards that allow it (guardrails) be overridden.

    ``from_stage`` is the position of the stage the caller judged (the API requires it, the admin button and the
    auto-promotion send it): when the release has moved on meanwhile the promotion is refused (409
    ``stale_stage``), so twenty concurrent clicks promote once, not through every stage."""
    if override and actor is None:
        raise DomainPermissionDenied("Only a person can override promotion guards.")

    def expect(locked: Release) -> None:
        current = locked.current_stage.position if locked.current_stage is not None else None
        if from_stage is not None and current != from_stage:
            raise DomainError(
                f"The release is no longer at stage {from_stage} (it is at stage {current}); look again.",
                code="stale_stage",
                extra={"from_stage": from_stage, "current_stage": current},
            )

    def mutate(locked: Release, context: hooks.TransitionContext) -> None:
        stages = list(locked.ordered_stages)
        current = locked.current_stage
        if current is not None:
            current.completed_at = context.now
            record_actor(current, context.actor, "Stage completed")
            current.save(update_fields=["completed_at"])
            context.audit_data["completed_stage"] = current.position
        following = [stage for stage in stages if current is None or stage.position > current.position]
        if following:
            _start_stage(locked, following[0], context)
        else:
            context.to_state = ReleaseStatus.LAUNCHED
            locked.launched_at = context.now

    return _transition(
        release=release,
        transition=PROMOTE,
        actor=actor,
        reason=reason,
        override=override,
        mutate=mutate,
        expect=expect,
    )


def release_pause(*, release: Release, actor: Actor | None, reason: str) -> Release:
    return _transition(release=release, transition=PAUSE, actor=actor, reason=reason)


def release_resume(*, release: Release, actor: Actor, reason: str = "") -> Release:
    def mutate(locked: Release, context: hooks.TransitionContext) -> None:
        # The hold time restarts: the paused period gave the stage no traffic to judge it by.
        locked.stage_started_at = context.now

    return _transition(release=release, transition=RESUME, actor=actor, reason=reason, mutate=mutate)


def release_rollback(*, release: Release, actor: Actor | None, reason: str) -> Release:
    return _transition(release=release, transition=ROLLBACK, actor=actor, reason=reason, mutate=_close)


def release_begin_verification(*, release: Release, actor: Actor | None, reason: str = "") -> Release:
    def mutate(locked: Release, context: hooks.TransitionContext) -> None:
        locked.verification_started_at = context.now

    return _transition(release=release, transition=BEGIN_VERIFICATION, actor=actor, reason=reason, mutate=mutate)


def verification_time_remaining(release: Release, now: Any = None) -> timedelta:
    if release.verification_started_at is None:
        return release.verification_window
    now = now or timezone.now()
    return max(timedelta(0), release.verification_started_at + release.verification_window - now)


def release_complete_verification(
    *, release: Release, actor: Actor | None, reason: str = "", override: bool = False
) -> Release:
    if override and actor is None:
        raise DomainPermissionDenied("Only a person can override verification guards.")
    return _transition(
        release=release,
        transition=COMPLETE_VERIFICATION,
        actor=actor,
        reason=reason,
        override=override,
        mutate=_close,
    )


def human_duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    text = " ".join(part for part in parts if part)
    return text or f"{seconds}s"


# Dispatch by transition name, for the API and admin which receive the name from the user.
TRANSITION_SERVICES: dict[str, Callable[..., Release]] = {
    "submit": release_submit,
    "request_changes": release_request_changes,
    "reject": release_reject,
    "approve": release_approve,
    "cancel": release_cancel,
    "start_rollout": release_start_rollout,
    "promote": release_promote,
    "pause": release_pause,
    "resume": release_resume,
    "rollback": release_rollback,
    "begin_verification": release_begin_verification,
    "complete_verification": release_complete_verification,
}
