"""``manage.py seed_opportunities_demo``: contact-reason data and three opportunities for the demo.

Uses the demo's program manager (``pm``), solutions and releases when ``seed_demo`` made them; otherwise creates a
minimal set through the services: a program manager and the crew that approves and verifies one buyer-refunds
release (every demo password is ``rollgate-demo``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand
from django.db import transaction

from core.roles import AUTHORS, ON_CALL, PROGRAM_MANAGERS, REVIEWERS
from governance.demo import advance_release
from opportunities.demo import seed_opportunities_demo
from opportunities.models import Opportunity
from releases import services as release_services
from releases.choices import Audience, ReleaseStatus, RiskLevel
from releases.models import AutomationSolution, Release
from releases.services import StageSpec

DEMO_PASSWORD = "rollgate-demo"  # noqa: S105 - the demo's documented local password
# The usernames and solution keys of ``seed_demo``'s demo data.
USERS = [
    ("pm", PROGRAM_MANAGERS),
    ("pm2", PROGRAM_MANAGERS),
    ("reviewer", REVIEWERS),
    ("reviewer2", REVIEWERS),
    ("oncall", ON_CALL),
    ("author", AUTHORS),
]
SOLUTIONS = [
    ("buyer-refunds", "Buyer refunds assistant", Audience.BUYERS),
    ("seller-payouts", "Seller payouts assistant", Audience.SELLERS),
    ("creator-onboarding", "Creator onboarding guide", Audience.CREATORS),
]


class Command(BaseCommand):
    help = "Create the opportunities demo (contact-reason volumes, three opportunities, one measured). Idempotent."

    def handle(self, *args: Any, **options: Any) -> None:
        if Opportunity.objects.exists():
            self.stdout.write("Demo opportunities already exist.")
            return
        with transaction.atomic():
            users = {name: self._user(name, group) for name, group in USERS}
            solutions = {key: self._solution(key, name, audience, users["pm"]) for key, name, audience in SOLUTIONS}
            releases = list(Release.objects.filter(solution__key__in=solutions).order_by("id"))
            if not any(r.status == ReleaseStatus.VERIFIED and r.solution.key == "buyer-refunds" for r in releases):
                releases.append(self._verified_release(solutions["buyer-refunds"], users))
            created = seed_opportunities_demo(program_manager=users["pm"], solutions=solutions, releases=releases)
        self.stdout.write(self.style.SUCCESS(f"Demo opportunities ready: {len(created)}."))

    def _user(self, username: str, group: str) -> User:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create_user(username=username, password=DEMO_PASSWORD, is_staff=True)
            user.groups.add(Group.objects.get(name=group))
        return user

    def _solution(self, key: str, name: str, audience: str, owner: User) -> AutomationSolution:
        existing = AutomationSolution.objects.filter(key=key).first()
        return existing or release_services.solution_create(
            actor=owner, key=key, name=name, audience=audience, owner=owner
        )

    def _verified_release(self, solution: AutomationSolution, users: dict[str, User]) -> Release:
        release = release_services.release_create(
            actor=users["author"],
            solution=solution,
            title="Answer refund status from the order lookup",
            change_summary="Answer where a refund is instead of handing off.",
            risk_level=RiskLevel.LOW,
            system_prompt="You are the marketplace refunds assistant. Look the order up before answering.",
            resolution_flow={"steps": ["identify_order", "lookup", "answer", "confirm"]},
            model_name="gpt-4o-2024-08-06",
            model_parameters={"temperature": 0.2},
            tools=["order_lookup", "policy_search"],
            knowledge_base_version="kb-2026-11-20",
            markets=["US", "DE", "FR"],
            verification_window=timedelta(minutes=5),
            stages=(StageSpec(name="Full", traffic_percent=100, min_hold=timedelta(0)),),
        )
        people: dict[str, Any] = {
            "program_managers": [users["pm"], users["pm2"]],
            "reviewers": [users["reviewer"], users["reviewer2"]],
            "oncall": users["oncall"],
        }
        release = advance_release(release, ReleaseStatus.VERIFYING, **people)
        # The demo's story happened weeks ago: its verification window has run. Only the clock is set; the
        # verification itself is completed through the service below, guards included.
        assert release.verification_started_at is not None
        Release.objects.filter(pk=release.pk).update(
            verification_started_at=release.verification_started_at - release.verification_window
        )
        release.refresh_from_db()
        return advance_release(release, ReleaseStatus.VERIFIED, **people)
