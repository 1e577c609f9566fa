"""factory-boy factories and the helper that walks a release through its lifecycle via the real services."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from governance import demo
from releases import services
from releases.choices import Audience, ReleaseStatus, RiskLevel
from releases.models import AutomationSolution, Release
from releases.services import StageSpec

User = get_user_model()


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "pass-1234")
    is_staff = True

    @factory.post_generation
    def groups(self, create: bool, extracted: Any, **kwargs: Any) -> None:
        if create and extracted:
            for name in extracted:
                self.groups.add(Group.objects.get(name=name))
        if create:
            self.save()


class SolutionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AutomationSolution

    key = factory.Sequence(lambda n: f"solution-{n}")
    name = factory.Sequence(lambda n: f"Solution {n}")
    audience = Audience.BUYERS
    description = "Answers buyers about refunds."


DEFAULT_STAGES = (
    StageSpec(name="Canary", traffic_percent=5, min_hold=timedelta(hours=1), min_sample_size=0),
    StageSpec(name="Half", traffic_percent=50, min_hold=timedelta(hours=2)),
    StageSpec(name="Full", traffic_percent=100, min_hold=timedelta(0)),
)


def make_release(
    *,
    author: Any,
    solution: AutomationSolution | None = None,
    stages: tuple[StageSpec, ...] = DEFAULT_STAGES,
    **fields: Any,
) -> Release:
    """A complete draft, created through ``release_create`` like any author would."""
    content: dict[str, Any] = {
        "title": "Clarify refund eligibility",
        "change_summary": "Explain the 30-day window before offering a human.",
        "risk_level": RiskLevel.LOW,
        "system_prompt": "You are the marketplace refunds assistant. Be precise and kind.",
        "resolution_flow": {"steps": ["identify_order", "check_eligibility", "explain", "offer_handoff"]},
        "model_name": "gpt-4o-2024-08-06",
        "model_parameters": {"temperature": 0.2},
        "tools": ["order_lookup", "refund_policy"],
        "knowledge_base_version": "kb-2026-11-01",
        "markets": ["US", "DE"],
    }
    content.update(fields)
    return services.release_create(actor=author, solution=solution or SolutionFactory(), stages=stages, **content)


def governance_crew() -> dict[str, Any]:
    """Approvers and signers who are never the author: enough for the strictest seeded policy."""
    from core.roles import ON_CALL, PROGRAM_MANAGERS, REVIEWERS

    return {
        "program_managers": [
            UserFactory(username="crew.pm1", groups=[PROGRAM_MANAGERS]),
            UserFactory(username="crew.pm2", groups=[PROGRAM_MANAGERS]),
        ],
        "reviewers": [
            UserFactory(username="crew.rev1", groups=[REVIEWERS]),
            UserFactory(username="crew.rev2", groups=[REVIEWERS]),
        ],
        "oncall": UserFactory(username="crew.oncall", groups=[ON_CALL]),
    }


def advance_release(release: Release, to: str, *, program_manager: Any) -> Release:
    """Walk the release to ``to`` through the real services (see ``governance.demo.advance_release``):
    a crew of program managers, reviewers and on-call sign checklists and approve as the policy asks;
    ``program_manager`` performs the rollout steps."""
    crew = governance_crew()
    people: dict[str, Any] = {
        "program_managers": [program_manager, *crew["program_managers"]],
        "reviewers": crew["reviewers"],
        "oncall": crew["oncall"],
    }
    if to == ReleaseStatus.VERIFIED:
        release = demo.advance_release(release, ReleaseStatus.VERIFYING, **people)
        _end_verification_window(release)
    return demo.advance_release(release, to, **people)


def sign_open_checklists(release: Release) -> Release:
    """Have the crew sign whatever gate checklist the release has open, so the next transition's own
    guards are what a test exercises."""
    from governance.demo import sign_open_checklists as sign

    crew = governance_crew()
    sign(release=release, people=[*crew["program_managers"], *crew["reviewers"], crew["oncall"]])
    release.refresh_from_db()
    return release


def _end_verification_window(release: Release) -> None:
    # Time is controlled, not slept on: move the window's start back instead of waiting seven days.
    assert release.verification_started_at is not None
    Release.objects.filter(pk=release.pk).update(
        verification_started_at=release.verification_started_at - release.verification_window
    )
    release.refresh_from_db()
