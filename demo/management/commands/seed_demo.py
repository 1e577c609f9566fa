"""Demo data for trying Rollgate, made through the services: one login per role, releases in every state, two
days of metrics telling a story (a breaching canary with an open incident, a healthy verification, a launch with
too little data), a notification endpoint, and the opportunities backlog measured on the verified release.

It lives in the top-floor ``demo`` app because it drives every other app, opportunities included."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.db import transaction

from core.roles import AUDITORS, AUTHORS, ON_CALL, PROGRAM_MANAGERS, REVIEWERS
from governance import demo as governance_demo
from governance.demo import advance_release
from governance.models import ChecklistGate
from opportunities.demo import seed_opportunities_demo
from releases import services
from releases.choices import Audience, ReleaseStatus, RiskLevel
from releases.models import AutomationSolution, Release
from releases.services import StageSpec

from ...story import Traffic, tell

DEMO_PASSWORD = "rollgate-demo"  # noqa: S105 - printed by `make run` for local demo logins only

DEMO_USERS = [
    ("author", "Ana", "Author", AUTHORS),
    ("author2", "Ben", "Builder", AUTHORS),
    ("pm", "Pia", "Program-Manager", PROGRAM_MANAGERS),
    ("pm2", "Paul", "Planner", PROGRAM_MANAGERS),
    ("reviewer", "Rita", "Reviewer", REVIEWERS),
    ("reviewer2", "Rob", "Reviewer", REVIEWERS),
    ("oncall", "Otto", "On-call", ON_CALL),
    ("auditor", "Aud", "Auditor", AUDITORS),
]

SOLUTIONS = [
    ("buyer-refunds", "Buyer refunds assistant", Audience.BUYERS, "Answers buyers about refund eligibility."),
    ("seller-payouts", "Seller payouts assistant", Audience.SELLERS, "Explains payout schedules and holds."),
    ("creator-onboarding", "Creator onboarding guide", Audience.CREATORS, "Walks new creators through setup."),
]

STAGES = (
    StageSpec(name="Canary", traffic_percent=5, markets=("US",), min_hold=timedelta(hours=2), min_sample_size=500),
    StageSpec(name="Quarter", traffic_percent=25, min_hold=timedelta(hours=12), min_sample_size=2000),
    StageSpec(name="Full", traffic_percent=100, min_hold=timedelta(0)),
)

# (solution key, title, risk, target status, extra)
RELEASES: list[tuple[str, str, str, str, dict[str, Any]]] = [
    # Verified weeks ago: the opportunities backlog measures its realized impact.
    ("buyer-refunds", "Answer refund status from the order lookup", RiskLevel.LOW, ReleaseStatus.VERIFIED, {}),
    # Launched and in its (shortest allowed) verification window: Celery's periodic cycle completes it a few
    # minutes after seeding when the worker runs (`make run`). A seed cannot move time, and a verified release
    # made with a zero-length window would break the 5-minute minimum every other path obeys.
    ("buyer-refunds", "Explain the 30-day refund window first", RiskLevel.LOW, ReleaseStatus.VERIFYING, {}),
    # In its US-only canary, escalating more than its control: the open incident of the demo.
    ("buyer-refunds", "Offer order lookup before handoff", RiskLevel.MEDIUM, ReleaseStatus.ROLLING_OUT, {}),
    ("buyer-refunds", "Shorter greeting, fewer clarifying questions", RiskLevel.LOW, ReleaseStatus.DRAFT, {}),
    ("seller-payouts", "Move to the new payout-status tool", RiskLevel.HIGH, ReleaseStatus.IN_REVIEW, {}),
    ("seller-payouts", "Clarify reserve holds for new sellers", RiskLevel.MEDIUM, ReleaseStatus.APPROVED, {}),
    ("creator-onboarding", "Knowledge base refresh for creator tiers", RiskLevel.LOW, ReleaseStatus.LAUNCHED, {}),
    ("creator-onboarding", "Switch to a smaller model", RiskLevel.CRITICAL, ReleaseStatus.DRAFT, {}),
]


# Conversations per hour and rates: the canary escalates up to 16 points more than its control by the end of the day
# (medium risk tolerates 3); the verification tracks its control; the launch sees a handful of conversations.
# The canary serves 5% of US traffic: treatment and control in that ratio, or the sample-ratio check flags it.
BREACHING = Traffic(conversations=130, control_conversations=2470, escalation=0.15, control_escalation=0.10, drift=0.12)
HEALTHY = Traffic(conversations=700, control_conversations=700, escalation=0.095, control_escalation=0.10)
THIN = Traffic(conversations=6, control_conversations=0, escalation=0.12, control_escalation=0.0)


class Command(BaseCommand):
    help = "Create demo users (one per role, password 'rollgate-demo'), solutions and releases. Idempotent."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            users = self._users()
            if Release.objects.exists():
                self.stdout.write("Demo releases already exist; users refreshed.")
                return
            solutions = self._solutions(users["pm"])
            made: dict[str, Release] = {}
            for number, (key, title, risk, target, extra) in enumerate(RELEASES, start=1):
                author = users["author"] if key != "seller-payouts" else users["author2"]
                release = services.release_create(
                    actor=author,
                    solution=solutions[key],
                    title=title,
                    change_summary=f"{title}. Measured on containment and CSAT.",
                    risk_level=risk,
                    # Each version really changes something, so their content hashes differ like real ones.
                    system_prompt=(
                        f"You are the {solutions[key].name} of the marketplace. Answer in the customer's "
                        "language, cite the policy you rely on, and offer a human agent when unsure.\n"
                        f"This version: {title.lower()}."
                    ),
                    resolution_flow={"steps": ["greet", "identify_intent", "lookup", "answer", "confirm"]},
                    model_name="gpt-4o-2024-08-06",
                    model_parameters={"temperature": 0.2, "max_tokens": 600},
                    tools=["order_lookup", "policy_search"],
                    knowledge_base_version=f"kb-2026-11-{number:02d}",
                    markets=["US", "DE", "FR"],
                    verification_window=timedelta(days=7),
                    stages=STAGES,
                    **extra,
                )
                program_managers = [users["pm"], users["pm2"]]
                reviewers = [users["reviewer"], users["reviewer2"]]
                people: dict[str, Any] = {
                    "program_managers": program_managers,
                    "reviewers": reviewers,
                    "oncall": users["oncall"],
                }
                if target == ReleaseStatus.VERIFIED:
                    release = self._verified(release, people)
                release = advance_release(
                    release, target, **people, stop_after_stage=1 if target == ReleaseStatus.ROLLING_OUT else None
                )
                made[title] = release
                if release.status == ReleaseStatus.APPROVED:
                    # Ready for the demo's "Start rollout": the rollout checklist is signed by the reviewers,
                    # program managers and on-call (never by the release's author), so `pm` only presses the button.
                    governance_demo.sign_checklist(
                        release=release,
                        gate=ChecklistGate.ROLLOUT,
                        people=[*reviewers, *program_managers, users["oncall"]],
                    )
            tell(
                program_manager=users["pm"],
                stories=[
                    (made["Offer order lookup before handoff"], ["US"], BREACHING),
                    (made["Explain the 30-day refund window first"], ["US", "DE", "FR"], HEALTHY),
                    (made["Knowledge base refresh for creator tiers"], ["US", "DE", "FR"], THIN),
                ],
            )
            seed_opportunities_demo(
                program_manager=users["pm"],
                solutions=solutions,
                releases=[r for r in made.values() if r.status == ReleaseStatus.VERIFIED],
            )
        self.stdout.write(self.style.SUCCESS(f"Demo data ready: {Release.objects.count()} releases."))

    def _verified(self, release: Release, people: dict[str, Any]) -> Release:
        release = advance_release(release, ReleaseStatus.VERIFYING, **people)
        # Its story happened weeks ago: the verification window has run. Only the clock is set; verification is
        # completed through the service afterwards, guards included.
        assert release.verification_started_at is not None
        Release.objects.filter(pk=release.pk).update(
            verification_started_at=release.verification_started_at - release.verification_window
        )
        release.refresh_from_db()
        return release

    def _users(self) -> dict[str, User]:
        users = {}
        for username, first, last, group in DEMO_USERS:
            user, _ = User.objects.get_or_create(
                username=username, defaults={"first_name": first, "last_name": last, "email": f"{username}@demo.test"}
            )
            user.is_staff = True
            user.set_password(DEMO_PASSWORD)
            user.save()
            user.groups.add(Group.objects.get(name=group))
            users[username] = user
        admin, _ = User.objects.get_or_create(username="admin", defaults={"email": "admin@demo.test"})
        admin.is_staff = admin.is_superuser = True
        admin.set_password(DEMO_PASSWORD)
        admin.save()
        return users

    def _solutions(self, owner: User) -> dict[str, AutomationSolution]:
        solutions = {}
        for key, name, audience, description in SOLUTIONS:
            existing = AutomationSolution.objects.filter(key=key).first()
            solutions[key] = existing or services.solution_create(
                actor=owner, key=key, name=name, audience=audience, description=description, owner=owner
            )
        return solutions
