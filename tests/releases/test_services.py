from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from core.errors import (
    ContentFrozen,
    DomainPermissionDenied,
    DomainValidationError,
    GuardFailed,
    IllegalTransition,
    SeparationOfDuties,
)
from core.models import AuditEvent
from releases import services
from releases.choices import ReleaseStatus as S
from releases.models import Release, RolloutStage
from releases.services import StageSpec
from releases.state_machine import TRANSITIONS
from tests.concurrency import run_at_once
from tests.factories import SolutionFactory, advance_release, make_release, sign_open_checklists

pytestmark = pytest.mark.django_db


def _writes(release: Release) -> tuple[int, int, str]:
    release.refresh_from_db()
    return AuditEvent.objects.count(), release.history.count(), release.status


def _assert_recorded(release: Release, *, action: str, from_state: str, to_state: str, actor: Any) -> None:
    # Effects of other apps (e.g. a checklist instantiated on entering a gate) may log after the transition.
    event = AuditEvent.objects.filter(release_id=release.pk, action__startswith="release.").order_by("-id").first()
    assert event is not None
    assert (event.action, event.from_state, event.to_state) == (action, from_state, to_state)
    assert event.actor == actor
    assert event.actor_label == (actor.username if actor else "system")
    latest = release.history.order_by("-history_id").first()
    assert latest.status == to_state
    assert latest.history_user == actor
    assert latest.history_change_reason


class TestLegalTransitions:
    def test_submit(self, draft_release, author):
        release = services.release_submit(release=draft_release, actor=author)
        assert release.status == S.IN_REVIEW and release.submitted_at is not None
        _assert_recorded(release, action="release.submit", from_state=S.DRAFT, to_state=S.IN_REVIEW, actor=author)

    def test_request_changes(self, draft_release, program_manager, reviewer):
        release = advance_release(draft_release, S.IN_REVIEW, program_manager=program_manager)
        release = services.release_request_changes(release=release, actor=reviewer, reason="Cite the policy")
        assert release.status == S.DRAFT
        _assert_recorded(
            release, action="release.request_changes", from_state=S.IN_REVIEW, to_state=S.DRAFT, actor=reviewer
        )
        assert release.history.order_by("-history_id").first().history_change_reason == "Cite the policy"

    def test_reject(self, draft_release, program_manager, reviewer):
        release = advance_release(draft_release, S.IN_REVIEW, program_manager=program_manager)
        release = services.release_reject(release=release, actor=reviewer, reason="Unsafe refund promise")
        assert release.status == S.REJECTED and release.closed_at is not None
        _assert_recorded(release, action="release.reject", from_state=S.IN_REVIEW, to_state=S.REJECTED, actor=reviewer)

    def test_approve(self, draft_release, program_manager):
        release = advance_release(draft_release, S.APPROVED, program_manager=program_manager)
        assert release.approved_at is not None
        _assert_recorded(
            release, action="release.approve", from_state=S.IN_REVIEW, to_state=S.APPROVED, actor=program_manager
        )

    @pytest.mark.parametrize("start", [S.DRAFT, S.IN_REVIEW, S.APPROVED])
    def test_cancel(self, draft_release, program_manager, start):
        release = advance_release(draft_release, start, program_manager=program_manager)
        release = services.release_cancel(release=release, actor=program_manager, reason="Superseded")
        assert release.status == S.CANCELLED
        _assert_recorded(
            release, action="release.cancel", from_state=start, to_state=S.CANCELLED, actor=program_manager
        )

    def test_start_rollout_activates_first_stage(self, draft_release, program_manager):
        release = sign_open_checklists(advance_release(draft_release, S.APPROVED, program_manager=program_manager))
        release = services.release_start_rollout(release=release, actor=program_manager)
        assert release.status == S.ROLLING_OUT
        assert release.current_stage.position == 1 and release.current_stage.started_at is not None
        _assert_recorded(
            release,
            action="release.start_rollout",
            from_state=S.APPROVED,
            to_state=S.ROLLING_OUT,
            actor=program_manager,
        )

    def test_promote_after_hold_time_moves_to_next_stage(self, draft_release, program_manager):
        release = advance_release(draft_release, S.ROLLING_OUT, program_manager=program_manager)
        with time_machine.travel(timezone.now() + timedelta(hours=2), tick=False):
            release = services.release_promote(release=release, actor=program_manager)
        assert release.status == S.ROLLING_OUT and release.current_stage.position == 2
        assert RolloutStage.objects.get(release=release, position=1).completed_at is not None
        _assert_recorded(
            release,
            action="release.promote",
            from_state=S.ROLLING_OUT,
            to_state=S.ROLLING_OUT,
            actor=program_manager,
        )

    def test_promote_from_last_stage_launches(self, draft_release, program_manager):
        release = advance_release(draft_release, S.ROLLING_OUT, program_manager=program_manager)
        for _ in range(2):
            release = services.release_promote(release=release, actor=program_manager, override=True, reason="ok")
        assert release.current_stage.position == 3
        release = sign_open_checklists(release)
        release = services.release_promote(release=release, actor=None)  # last stage holds 0s: the system may
        assert release.status == S.LAUNCHED and release.launched_at is not None
        _assert_recorded(release, action="release.promote", from_state=S.ROLLING_OUT, to_state=S.LAUNCHED, actor=None)

    def test_pause_and_resume(self, draft_release, program_manager, oncall):
        release = advance_release(draft_release, S.ROLLING_OUT, program_manager=program_manager)
        release = services.release_pause(release=release, actor=oncall, reason="CSAT dropping in DE")
        assert release.status == S.PAUSED
        _assert_recorded(release, action="release.pause", from_state=S.ROLLING_OUT, to_state=S.PAUSED, actor=oncall)
        release = services.release_resume(release=release, actor=program_manager)
        assert release.status == S.ROLLING_OUT
        _assert_recorded(
            release, action="release.resume", from_state=S.PAUSED, to_state=S.ROLLING_OUT, actor=program_manager
        )

    @pytest.mark.parametrize("start", [S.ROLLING_OUT, S.PAUSED, S.LAUNCHED, S.VERIFYING])
    def test_rollback(self, draft_release, program_manager, oncall, start):
        release = advance_release(
            draft_release, S.ROLLING_OUT if start == S.PAUSED else start, program_manager=program_manager
        )
        if start == S.PAUSED:
            release = services.release_pause(release=release, actor=oncall, reason="look closer")
        release = services.release_rollback(release=release, actor=oncall, reason="Escalations doubled")
        assert release.status == S.ROLLED_BACK and release.closed_at is not None
        _assert_recorded(release, action="release.rollback", from_state=start, to_state=S.ROLLED_BACK, actor=oncall)

    def test_system_rolls_back(self, draft_release, program_manager):
        release = advance_release(draft_release, S.LAUNCHED, program_manager=program_manager)
        release = services.release_rollback(release=release, actor=None, reason="Guardrail error_rate failed")
        _assert_recorded(release, action="release.rollback", from_state=S.LAUNCHED, to_state=S.ROLLED_BACK, actor=None)

    def test_verification(self, draft_release, program_manager):
        release = advance_release(draft_release, S.LAUNCHED, program_manager=program_manager)
        release = services.release_begin_verification(release=release, actor=program_manager)
        assert release.status == S.VERIFYING and release.verification_started_at is not None
        with pytest.raises(GuardFailed) as refused:
            services.release_complete_verification(release=release, actor=program_manager)
        assert refused.value.code == "verification_window"
        release = advance_release(release, S.VERIFIED, program_manager=program_manager)
        _assert_recorded(
            release,
            action="release.complete_verification",
            from_state=S.VERIFYING,
            to_state=S.VERIFIED,
            actor=program_manager,
        )


# A state each transition cannot start from.
ILLEGAL_FROM = {
    "submit": S.IN_REVIEW,
    "request_changes": S.DRAFT,
    "reject": S.DRAFT,
    "approve": S.DRAFT,
    "cancel": S.ROLLING_OUT,
    "start_rollout": S.IN_REVIEW,
    "promote": S.APPROVED,
    "pause": S.APPROVED,
    "resume": S.ROLLING_OUT,
    "rollback": S.APPROVED,
    "begin_verification": S.ROLLING_OUT,
    "complete_verification": S.LAUNCHED,
}


def test_every_transition_is_covered_by_the_illegal_table():
    assert set(ILLEGAL_FROM) == set(TRANSITIONS)


@pytest.mark.parametrize(("name", "state"), sorted(ILLEGAL_FROM.items()))
def test_illegal_transition_refused_and_writes_nothing(name, state, draft_release, program_manager, superuser):
    release = advance_release(draft_release, state, program_manager=program_manager)
    before = _writes(release)
    arguments: dict[str, Any] = {"release": release, "actor": superuser}
    if name != "submit":
        arguments["reason"] = "trying"
    with pytest.raises(IllegalTransition) as refused:
        services.TRANSITION_SERVICES[name](**arguments)
    assert refused.value.code == "illegal_transition"
    assert _writes(release) == before


@pytest.mark.parametrize("terminal", [S.VERIFIED, S.REJECTED, S.CANCELLED, S.ROLLED_BACK])
def test_terminal_states_allow_nothing(terminal):
    from releases.state_machine import transitions_from

    assert transitions_from(terminal) == []


class TestGuards:
    def test_submit_needs_content_and_stages(self, author, solution):
        release = services.release_create(actor=author, solution=solution, title="Empty")
        before = _writes(release)
        with pytest.raises(GuardFailed) as refused:
            services.release_submit(release=release, actor=author)
        assert refused.value.code == "incomplete_release"
        problems = refused.value.extra["problems"]
        assert {"system_prompt", "model_name", "markets", "stages"} <= set(problems)
        assert _writes(release) == before

    def test_submit_needs_last_stage_at_100(self, author, solution):
        release = make_release(author=author, solution=solution, stages=(StageSpec("Canary", 5),))
        with pytest.raises(GuardFailed, match="100%"):
            services.release_submit(release=release, actor=author)

    @pytest.mark.parametrize(
        ("stages", "message"),
        [
            ((StageSpec("a", 50), StageSpec("b", 50)), "higher than the stage before"),
            ((StageSpec("a", 50), StageSpec("b", 20)), "higher than the stage before"),
            ((StageSpec("a", 0),), "between 1 and 100"),
            ((StageSpec("a", 101),), "between 1 and 100"),
            ((StageSpec("a", 10, markets=("JP",)),), "not markets of the release"),
            ((StageSpec(" ", 10),), "needs a name"),
        ],
    )
    def test_invalid_stage_plans_are_refused_on_write(self, author, solution, stages, message):
        with pytest.raises(DomainValidationError, match=message):
            make_release(author=author, solution=solution, stages=stages)
        assert not Release.objects.exists()

    def test_promote_waits_for_hold_time_unless_overridden(self, draft_release, program_manager):
        release = advance_release(draft_release, S.ROLLING_OUT, program_manager=program_manager)
        before = _writes(release)
        with pytest.raises(GuardFailed) as refused:
            services.release_promote(release=release, actor=program_manager)
        assert refused.value.code == "hold_time" and refused.value.extra["remaining_seconds"] > 3000
        assert _writes(release) == before
        with pytest.raises(DomainValidationError):
            services.release_promote(release=release, actor=program_manager, override=True)  # no reason
        release = services.release_promote(
            release=release, actor=program_manager, override=True, reason="Sample reached early"
        )
        assert release.current_stage.position == 2
        event = AuditEvent.objects.filter(release_id=release.pk, action="release.promote").latest("id")
        assert event.data["override"] is True and event.reason == "Sample reached early"

    def test_system_cannot_override(self, draft_release, program_manager):
        release = advance_release(draft_release, S.ROLLING_OUT, program_manager=program_manager)
        with pytest.raises(DomainPermissionDenied):
            services.release_promote(release=release, actor=None, override=True, reason="x")

    def test_one_release_rolling_out_per_solution_and_market(self, author, program_manager, solution):
        first = advance_release(
            make_release(author=author, solution=solution, markets=["US", "DE"]),
            S.ROLLING_OUT,
            program_manager=program_manager,
        )
        second = advance_release(
            make_release(author=author, solution=solution, markets=["DE", "FR"], stages=(StageSpec("All", 100),)),
            S.APPROVED,
            program_manager=program_manager,
        )
        sign_open_checklists(second)
        with pytest.raises(GuardFailed) as refused:
            services.release_start_rollout(release=second, actor=program_manager)
        assert refused.value.code == "market_busy" and refused.value.extra["markets"] == ["DE"]
        other_markets = advance_release(
            make_release(author=author, solution=solution, markets=["GB"], stages=(StageSpec("All", 100),)),
            S.APPROVED,
            program_manager=program_manager,
        )
        sign_open_checklists(other_markets)
        assert services.release_start_rollout(release=other_markets, actor=program_manager).status == S.ROLLING_OUT
        other_solution = advance_release(
            make_release(author=author, markets=["DE"], stages=(StageSpec("All", 100),)),
            S.APPROVED,
            program_manager=program_manager,
        )
        sign_open_checklists(other_solution)
        assert services.release_start_rollout(release=other_solution, actor=program_manager).status == S.ROLLING_OUT
        services.release_rollback(release=first, actor=program_manager, reason="done")
        assert services.release_start_rollout(release=second, actor=program_manager).status == S.ROLLING_OUT

    def test_reason_required_for_stopping(self, draft_release, program_manager, oncall):
        release = advance_release(draft_release, S.ROLLING_OUT, program_manager=program_manager)
        before = _writes(release)
        with pytest.raises(DomainValidationError) as refused:
            services.release_pause(release=release, actor=oncall, reason="   ")
        assert "reason" in refused.value.errors
        assert _writes(release) == before


class TestRolesAndDuties:
    def test_author_never_approves_even_as_superuser(self, superuser, program_manager, solution):
        release = advance_release(
            make_release(author=superuser, solution=solution), S.IN_REVIEW, program_manager=program_manager
        )
        before = _writes(release)
        with pytest.raises(SeparationOfDuties):
            services.release_approve(release=release, actor=superuser)
        assert _writes(release) == before

    def test_last_editor_never_approves(self, draft_release, second_author, program_manager):
        second_author.groups.add(*program_manager.groups.all())
        services.release_reassign(release=draft_release, actor=draft_release.author, co_authors=[second_author])
        services.release_update(release=draft_release, actor=second_author, title="Edited by Ben")
        release = services.release_submit(release=draft_release, actor=draft_release.author)
        with pytest.raises(SeparationOfDuties):
            services.release_approve(release=release, actor=second_author)

    @pytest.mark.parametrize(
        ("persona", "name"),
        [
            ("reviewer", "submit"),
            ("oncall", "start_rollout"),
            ("author", "pause"),
            ("auditor", "rollback"),
            ("outsider", "submit"),
        ],
    )
    def test_roles_refused(self, request, draft_release, program_manager, persona, name):
        state = {"submit": S.DRAFT, "start_rollout": S.APPROVED, "pause": S.ROLLING_OUT, "rollback": S.ROLLING_OUT}
        release = advance_release(draft_release, state[name], program_manager=program_manager)
        actor = request.getfixturevalue(persona)
        arguments: dict[str, Any] = {"release": release, "actor": actor}
        if name != "submit":
            arguments["reason"] = "x"
        before = _writes(release)
        with pytest.raises(DomainPermissionDenied):
            services.TRANSITION_SERVICES[name](**arguments)
        assert _writes(release) == before

    def test_system_cannot_start_rollout(self, draft_release, program_manager):
        release = advance_release(draft_release, S.APPROVED, program_manager=program_manager)
        with pytest.raises(DomainPermissionDenied):
            services.release_start_rollout(release=release, actor=None)  # type: ignore[arg-type]


class TestContent:
    def test_hash_stable_for_equal_content(self, author, solution):
        first = make_release(author=author, solution=solution)
        second = make_release(author=author, solution=SolutionFactory(), title="Another title")
        assert first.content_hash == second.content_hash
        first.refresh_from_db()
        assert first.compute_content_hash() == first.content_hash
        assert len(first.content_hash) == 64

    def test_key_order_and_market_order_do_not_matter(self, author, solution):
        first = make_release(author=author, solution=solution, model_parameters={"a": 1, "b": 2}, markets=["US", "DE"])
        second = make_release(author=author, solution=solution, model_parameters={"b": 2, "a": 1}, markets=["DE", "US"])
        assert first.content_hash == second.content_hash

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("system_prompt", "You are terse."),
            ("resolution_flow", {"steps": ["answer"]}),
            ("model_name", "gpt-4o-mini"),
            ("model_parameters", {"temperature": 0.3}),
            ("tools", ["order_lookup"]),
            ("knowledge_base_version", "kb-2026-11-24"),
            ("markets", ["US", "DE", "FR"]),
        ],
    )
    def test_every_material_edit_changes_hash(self, draft_release, author, field, value):
        old = draft_release.content_hash
        updated = services.release_update(release=draft_release, actor=author, **{field: value})
        assert updated.content_hash != old

    def test_stage_edit_changes_hash_title_does_not(self, draft_release, author):
        old = draft_release.content_hash
        assert services.release_update(release=draft_release, actor=author, title="New").content_hash == old
        updated = services.release_update(
            release=draft_release, actor=author, stages=[StageSpec("Canary", 10), StageSpec("Full", 100)]
        )
        assert updated.content_hash != old
        assert [s.traffic_percent for s in updated.ordered_stages] == [10, 100]

    def test_content_frozen_outside_draft(self, draft_release, author, program_manager):
        release = advance_release(draft_release, S.IN_REVIEW, program_manager=program_manager)
        before = _writes(release)
        with pytest.raises(ContentFrozen):
            services.release_update(release=release, actor=author, system_prompt="sneaky")
        assert _writes(release) == before

    def test_versions_count_per_solution(self, author, solution):
        assert [make_release(author=author, solution=solution).version for _ in range(3)] == [1, 2, 3]
        assert make_release(author=author).version == 1


# Threads need committed data, so these tests commit; serialized_rollback restores the seeded roles, policies
# and templates that the flush after each of them removes.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
class TestConcurrency:
    def test_two_transitions_at_once_exactly_one_wins(self, draft_release, program_manager, oncall):
        release = advance_release(draft_release, S.ROLLING_OUT, program_manager=program_manager)
        # On-call and a program manager both hit "pause" on the same alert.
        results = run_at_once(
            lambda: services.release_pause(release=release, actor=oncall, reason="CSAT alert"),
            lambda: services.release_pause(release=release, actor=program_manager, reason="same alert"),
        )
        winners = [r for r in results if isinstance(r, Release)]
        losers = [r for r in results if isinstance(r, IllegalTransition)]
        assert len(winners) == 1 and len(losers) == 1, results
        release.refresh_from_db()
        assert release.status == S.PAUSED
        assert AuditEvent.objects.filter(release_id=release.pk, action="release.pause").count() == 1
        assert release.history.filter(status=S.PAUSED).count() == 1

    def test_same_transition_twice_at_once(self, draft_release):
        results = run_at_once(
            lambda: services.release_submit(release=draft_release, actor=draft_release.author),
            lambda: services.release_submit(release=draft_release, actor=draft_release.author),
        )
        assert sorted(type(r).__name__ for r in results) == ["IllegalTransition", "Release"]
        assert AuditEvent.objects.filter(release_id=draft_release.pk, action="release.submit").count() == 1

    def test_two_releases_start_in_one_market_at_once(self, author, program_manager, solution):
        releases = [
            sign_open_checklists(
                advance_release(
                    make_release(author=author, solution=solution, markets=["US"], stages=(StageSpec("All", 100),)),
                    S.APPROVED,
                    program_manager=program_manager,
                )
            )
            for _ in range(2)
        ]
        results = run_at_once(
            *[lambda r=r: services.release_start_rollout(release=r, actor=program_manager) for r in releases]
        )
        assert sorted(type(r).__name__ for r in results) == ["GuardFailed", "Release"], results
        assert Release.objects.filter(status=S.ROLLING_OUT).count() == 1

    def test_audit_chain_intact_after_concurrent_writes(self, author, solution):
        drafts = [make_release(author=author, solution=solution) for _ in range(4)]
        run_at_once(*[lambda d=d: services.release_submit(release=d, actor=author) for d in drafts])
        from core.audit import audit_verify_chain

        checked, broken = audit_verify_chain()
        assert broken is None and checked == AuditEvent.objects.count()
