"""N+1 guards: every governance list endpoint, admin changelist, work queue and the release page's governance
panel run a bounded number of queries whatever the number of rows. Each page shows more rows than its bound, so a
query per row cannot hide under it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from core.roles import AUDITORS, AUTHORS, ON_CALL, PROGRAM_MANAGERS, REVIEWERS
from governance import selectors
from governance import services as gov
from governance.admin import release_governance_panel
from governance.models import ApprovalPolicy, Checklist, ChecklistItem, ChecklistTemplate
from releases.choices import RiskLevel
from tests.conftest import admin_as, api_as
from tests.factories import SolutionFactory, UserFactory
from tests.governance.helpers import approved, submitted

pytestmark = pytest.mark.django_db

ROWS = 20
API_BOUND = 6
ADMIN_BOUND = 14


# The data set takes seconds to build and every test here only reads it, so it is built once per module inside one
# transaction that is rolled back at the end; each test still runs in its own savepoint. The personas are
# module-scoped for the same reason (they override the function-scoped ones of tests/conftest.py here).


@pytest.fixture(scope="module")
def module_db(django_db_setup: Any, django_db_blocker: Any) -> Any:
    with django_db_blocker.unblock(), transaction.atomic():
        yield
        transaction.set_rollback(True)


def _persona(username: str, *groups: str, **fields: Any) -> Any:
    return UserFactory(username=username, groups=list(groups), **fields)


@pytest.fixture(scope="module")
def author(module_db: Any) -> Any:
    return _persona("ana.author", AUTHORS)


@pytest.fixture(scope="module")
def program_manager(module_db: Any) -> Any:
    return _persona("pia.pm", PROGRAM_MANAGERS)


@pytest.fixture(scope="module")
def second_program_manager(module_db: Any) -> Any:
    return _persona("paul.pm", PROGRAM_MANAGERS)


@pytest.fixture(scope="module")
def reviewer(module_db: Any) -> Any:
    return _persona("rita.reviewer", REVIEWERS)


@pytest.fixture(scope="module")
def second_reviewer(module_db: Any) -> Any:
    return _persona("rob.reviewer", REVIEWERS)


@pytest.fixture(scope="module")
def oncall(module_db: Any) -> Any:
    return _persona("otto.oncall", ON_CALL)


@pytest.fixture(scope="module")
def auditor(module_db: Any) -> Any:
    return _persona("aud.auditor", AUDITORS)


@pytest.fixture(scope="module")
def superuser(module_db: Any) -> Any:
    return _persona("root.admin", is_superuser=True)


@pytest.fixture(scope="module")
def busy(
    author: Any,
    program_manager: Any,
    second_program_manager: Any,
    reviewer: Any,
    second_reviewer: Any,
    oncall: Any,
    auditor: Any,
    superuser: Any,
) -> Any:
    """ROWS solutions, each with its own medium policy and a release in review that one reviewer approved and
    signed; ROWS freeze windows; and one high-risk release approved by the crew (review + rollout checklists).
    Returns that approved release. Built once for the module: the tests only read it (or write inside their own
    rolled-back transaction). It asks for every persona so none is first created inside a test's savepoint."""
    crew = [program_manager, second_program_manager, reviewer, second_reviewer, oncall]
    now = timezone.now()
    for i in range(ROWS):
        solution = SolutionFactory()
        gov.approval_policy_create(
            actor=program_manager,
            name=f"{solution.name} (medium)",
            risk_level=RiskLevel.MEDIUM,
            solution=solution,
            requirements=[
                gov.RequirementSpec(group=PROGRAM_MANAGERS, minimum_count=1),
                gov.RequirementSpec(group=REVIEWERS, minimum_count=1),
            ],
        )
        release = submitted(author=author, risk_level=RiskLevel.MEDIUM, solution=solution)
        approver = reviewer if i % 2 else second_reviewer
        gov.approval_record(
            release=release,
            approver=approver,
            group=REVIEWERS,
            decision="approve",
            content_hash=release.content_hash,
            comment="",
        )
        item = ChecklistItem.objects.filter(checklist__release=release, signer_group__name=REVIEWERS).first()
        gov.checklist_item_sign_off(item=item, actor=approver, evidence_url="https://wiki.example.com/e", note="ok")
        gov.freeze_window_create(
            actor=program_manager,
            name=f"Campaign freeze {i}",
            starts_at=now + timedelta(days=i + 1),
            ends_at=now + timedelta(days=i + 2),
            reason="Marketplace campaign",
            markets=["US"],
        )
    return approved(submitted(author=author, risk_level=RiskLevel.HIGH), crew)


LIST_ENDPOINTS = [
    ("/api/v1/approval-policies/", "program_manager"),
    ("/api/v1/approvals/", "auditor"),
    ("/api/v1/approvals/awaiting-me/", "program_manager"),
    ("/api/v1/checklist-templates/", "reviewer"),
    ("/api/v1/checklists/", "auditor"),
    ("/api/v1/checklist-items/", "auditor"),
    ("/api/v1/checklist-items/awaiting-me/", "reviewer"),
    ("/api/v1/freeze-windows/", "program_manager"),
    ("/api/v1/audit-events/", "auditor"),
]


def test_list_endpoints_do_not_query_per_row(busy: Any, request: Any, django_assert_max_num_queries: Any) -> None:
    # One test walks them all: the fixture is the slow part.
    for url, persona in LIST_ENDPOINTS:
        client = api_as(request.getfixturevalue(persona))
        with django_assert_max_num_queries(API_BOUND, info=url):
            response = client.get(url)
        assert response.status_code == 200, url
        data = response.json()
        rows = data["results"] if isinstance(data, dict) else data
        assert len(rows) >= ROWS > API_BOUND, url


def test_policy_status_is_a_few_queries(busy: Any, auditor: Any, django_assert_max_num_queries: Any) -> None:
    client = api_as(auditor)
    with django_assert_max_num_queries(API_BOUND):
        data = client.get(f"/api/v1/policy-status/{busy.pk}/").json()
    assert data["satisfied"] and len(data["requirements"]) == 2


CHANGELISTS = [
    ("core", "auditevent", "auditor"),
    ("governance", "approvalpolicy", "program_manager"),
    ("governance", "approval", "auditor"),
    ("governance", "checklisttemplate", "program_manager"),
    ("governance", "checklist", "reviewer"),
    ("governance", "freezewindow", "program_manager"),
    ("governance", "awaitingmyapproval", "program_manager"),
    ("governance", "awaitingmyapproval", "superuser"),
    ("governance", "awaitingmysignoff", "reviewer"),
    ("governance", "awaitingmysignoff", "superuser"),
]


def test_admin_changelists_do_not_query_per_row(busy: Any, request: Any, django_assert_max_num_queries: Any) -> None:
    for app_label, model, persona in CHANGELISTS:
        client = admin_as(request.getfixturevalue(persona))
        url = reverse(f"admin:{app_label}_{model}_changelist")
        with django_assert_max_num_queries(ADMIN_BOUND, info=f"{url} as {persona}"):
            response = client.get(url)
        assert response.status_code == 200, url
        assert len(response.context["cl"].result_list) >= ROWS > ADMIN_BOUND, url


def test_awaiting_my_approval_shows_what_is_missing(busy: Any, program_manager: Any) -> None:
    page = admin_as(program_manager).get(reverse("admin:governance_awaitingmyapproval_changelist"))
    rows = page.context["cl"].result_list
    assert len(rows) == ROWS
    assert {row.still_missing_text for row in rows} == {f"1 more from {PROGRAM_MANAGERS}"}
    assert page.content.decode().count(f"1 more from {PROGRAM_MANAGERS}") == ROWS


def test_admin_change_pages_do_not_query_per_item(
    busy: Any, superuser: Any, program_manager: Any, django_assert_max_num_queries: Any
) -> None:
    checklist = Checklist.objects.filter(release=busy).first()
    active = ChecklistTemplate.objects.active().get(gate="review", risk_level=RiskLevel.HIGH)
    draft = gov.checklist_template_new_version(template=active, actor=program_manager)
    busy_policy = ApprovalPolicy.objects.get(risk_level=RiskLevel.CRITICAL, solution__isnull=True)
    items = active.items.count()
    assert checklist.items.count() >= 8 and items >= 8
    pages = [
        reverse("admin:governance_checklist_change", args=[checklist.pk]),
        reverse("admin:governance_checklisttemplate_change", args=[active.pk]),
        reverse("admin:governance_checklisttemplate_change", args=[draft.pk]),
        reverse("admin:governance_approvalpolicy_change", args=[busy_policy.pk]),
    ]
    client = admin_as(superuser)
    for url in pages:
        # A query per item (its group or signer, or the group choices of its form) would add 8 or more.
        with django_assert_max_num_queries(12, info=url):
            assert client.get(url).status_code == 200, url


def test_release_governance_panel_is_a_few_queries(
    busy: Any, reviewer: Any, program_manager: Any, django_assert_max_num_queries: Any
) -> None:
    items = ChecklistItem.objects.filter(checklist__release=busy).count()
    assert items >= ROWS // 2
    for user in (reviewer, program_manager):
        request = RequestFactory().get("/")
        request.user = user
        with django_assert_max_num_queries(8):
            html = release_governance_panel(request, busy)
        assert html.count('class="checklist-items"') == 2
    client = admin_as(program_manager)
    # 20 for the page and the panel, plus the diff: the previous release, both stage plans, the version list.
    with django_assert_max_num_queries(24):
        page = client.get(reverse("admin:releases_release_change", args=[busy.pk]))
    assert 'id="governance-panel"' in page.content.decode()
    assert 'id="diff"' in page.content.decode()


class TestAwaitingMyApprovalIsSetBased:
    def test_many_releases_in_a_few_queries(
        self, busy: Any, program_manager: Any, reviewer: Any, django_assert_max_num_queries: Any
    ) -> None:
        in_review = ROWS
        with django_assert_max_num_queries(5):
            waiting = selectors.awaiting_approval_by(user=program_manager)
        assert len(waiting) == in_review
        assert all(status.describe_missing() == f"1 more from {PROGRAM_MANAGERS}" for _release, status in waiting)
        # Every solution's own policy was chosen, not the default medium one.
        assert {status.policy.solution_id for release, status in waiting} == {r.solution_id for r, _s in waiting}
        # Reviewers are satisfied on every release (one approval each); the reviewer decided on half of them.
        assert selectors.awaiting_approval_by(user=reviewer) == []

    def test_expired_approvals_do_not_count(self, busy: Any, reviewer: Any, second_reviewer: Any) -> None:
        later = timezone.now() + timedelta(days=60)
        # Each reviewer's own decision still excludes a release; the other half now misses a reviewer again.
        waiting = selectors.awaiting_approval_by(user=reviewer, now=later)
        assert len(waiting) == ROWS // 2
        assert all(not status.requirements[1].met for _r, status in waiting)
        assert len(selectors.releases_awaiting_approval_by(user=second_reviewer, now=later)) == ROWS // 2

    def test_agrees_with_the_single_release_status(self, busy: Any, author: Any, oncall: Any, superuser: Any) -> None:
        emergency = submitted(author=author, risk_level=RiskLevel.LOW, is_emergency=True)
        waiting = dict(selectors.awaiting_approval_by(user=superuser))
        assert emergency in waiting
        for release, status in waiting.items():
            single = selectors.approval_policy_status(release=release)
            assert status.as_dict() == single.as_dict()
        emergency_status = waiting[emergency]
        assert {req.group for req in emergency_status.requirements} == {PROGRAM_MANAGERS, ON_CALL}
        assert [release for release, _s in selectors.awaiting_approval_by(user=oncall)] == [emergency]
