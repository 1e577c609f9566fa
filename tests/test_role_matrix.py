"""Every role against every write operation of the API schema: who may act (anything but 403) and who is refused
(403), whatever the object's state. A write operation the table does not list fails the test, so a new endpoint
must say who may use it."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator

from core.roles import AUDITORS, AUTHORS, ON_CALL, PROGRAM_MANAGERS, REVIEWERS
from governance.models import ApprovalPolicy, ChecklistItem, ChecklistTemplate, FreezeWindow
from monitoring.models import Guardrail, MetricDefinition, NotificationEndpoint
from monitoring.services import incident_trigger
from opportunities.services import opportunity_create
from tests.conftest import api_as
from tests.factories import SolutionFactory, UserFactory, make_release
from tests.governance.helpers import submitted

pytestmark = pytest.mark.django_db

ROLES = ("author", "pm", "reviewer", "oncall", "auditor", "outsider", "admin")
EVERYONE = frozenset(ROLES)
NOBODY: frozenset[str] = frozenset()


def roles(*names: str) -> frozenset[str]:
    return frozenset(names)


AUTHORING = roles("author", "pm", "admin")  # solutions: authors and program managers
OWNERS = roles("author")  # a draft: its author and co-authors, nobody else (superusers included)
GOVERNANCE_OWNERS = roles("pm", "admin")
ROLLOUT = roles("pm", "admin")
EMERGENCY_STOP = roles("pm", "oncall", "admin")
REVIEW = roles("pm", "reviewer", "admin")
TRIAGE = roles("oncall", "admin")
SAMPLE_WRITERS = roles("pm", "oncall", "admin")

# Who may use each write operation (everyone else gets 403).
EXPECTED: dict[str, frozenset[str]] = {
    "POST /api/v1/auth/token/revoke/": EVERYONE,
    "POST /api/v1/auth/token/rotate/": EVERYONE,
    "POST /api/v1/solutions/": AUTHORING,
    "PUT /api/v1/solutions/{id}/": AUTHORING,
    "PATCH /api/v1/solutions/{id}/": AUTHORING,
    "POST /api/v1/releases/": roles("author", "admin"),
    "PUT /api/v1/releases/{id}/": OWNERS,
    "PATCH /api/v1/releases/{id}/": OWNERS,
    "POST /api/v1/releases/{id}/submit/": OWNERS,
    "POST /api/v1/releases/{id}/reassign/": roles("author", "pm", "admin"),
    # A new draft from a release: whoever may create releases (the service checks releases.add_release).
    "POST /api/v1/releases/{id}/new-version/": roles("author", "admin"),
    "POST /api/v1/releases/{id}/request-changes/": REVIEW,
    "POST /api/v1/releases/{id}/reject/": REVIEW,
    # Approving for the Reviewers group: membership decides (program managers and on-call approve for their own).
    "POST /api/v1/releases/{id}/approve/": roles("reviewer", "admin"),
    "POST /api/v1/releases/{id}/cancel/": ROLLOUT,
    "POST /api/v1/releases/{id}/start-rollout/": ROLLOUT,
    "POST /api/v1/releases/{id}/promote/": ROLLOUT,
    "POST /api/v1/releases/{id}/resume/": ROLLOUT,
    "POST /api/v1/releases/{id}/begin-verification/": ROLLOUT,
    "POST /api/v1/releases/{id}/complete-verification/": ROLLOUT,
    "POST /api/v1/releases/{id}/pause/": EMERGENCY_STOP,
    "POST /api/v1/releases/{id}/rollback/": EMERGENCY_STOP,
    "POST /api/v1/approvals/": roles("reviewer", "admin"),
    "POST /api/v1/approval-policies/": GOVERNANCE_OWNERS,
    "PUT /api/v1/approval-policies/{id}/": GOVERNANCE_OWNERS,
    "PATCH /api/v1/approval-policies/{id}/": GOVERNANCE_OWNERS,
    "POST /api/v1/checklist-templates/": GOVERNANCE_OWNERS,
    "PUT /api/v1/checklist-templates/{id}/": GOVERNANCE_OWNERS,
    "PATCH /api/v1/checklist-templates/{id}/": GOVERNANCE_OWNERS,
    "POST /api/v1/checklist-templates/{id}/activate/": GOVERNANCE_OWNERS,
    "POST /api/v1/checklist-templates/{id}/new-version/": GOVERNANCE_OWNERS,
    # The item in the world is signed by Reviewers: group membership decides, and a superuser signs for any group.
    "POST /api/v1/checklist-items/{id}/sign-off/": roles("reviewer", "admin"),
    "POST /api/v1/checklist-items/{id}/mark-na/": roles("reviewer", "admin"),
    "POST /api/v1/freeze-windows/": GOVERNANCE_OWNERS,
    "PUT /api/v1/freeze-windows/{id}/": GOVERNANCE_OWNERS,
    "PATCH /api/v1/freeze-windows/{id}/": GOVERNANCE_OWNERS,
    "POST /api/v1/freeze-windows/{id}/cancel/": GOVERNANCE_OWNERS,
    "POST /api/v1/guardrails/": GOVERNANCE_OWNERS,
    "PUT /api/v1/guardrails/{id}/": GOVERNANCE_OWNERS,
    "PATCH /api/v1/guardrails/{id}/": GOVERNANCE_OWNERS,
    "POST /api/v1/metric-samples/": SAMPLE_WRITERS,
    "POST /api/v1/notification-endpoints/": GOVERNANCE_OWNERS,
    "PUT /api/v1/notification-endpoints/{id}/": GOVERNANCE_OWNERS,
    "PATCH /api/v1/notification-endpoints/{id}/": GOVERNANCE_OWNERS,
    "POST /api/v1/notifications/redrive/": roles("pm", "oncall", "admin"),
    "POST /api/v1/contact-reason-volumes/": SAMPLE_WRITERS,
    "POST /api/v1/opportunities/": GOVERNANCE_OWNERS,
    "PUT /api/v1/opportunities/{id}/": GOVERNANCE_OWNERS,
    "PATCH /api/v1/opportunities/{id}/": GOVERNANCE_OWNERS,
    "POST /api/v1/opportunities/{id}/accept/": GOVERNANCE_OWNERS,
    "POST /api/v1/opportunities/{id}/start-delivery/": GOVERNANCE_OWNERS,
    "POST /api/v1/opportunities/{id}/deliver/": GOVERNANCE_OWNERS,
    "POST /api/v1/opportunities/{id}/measure/": GOVERNANCE_OWNERS,
    "POST /api/v1/opportunities/{id}/drop/": GOVERNANCE_OWNERS,
    "POST /api/v1/incidents/{id}/acknowledge/": TRIAGE,
    "POST /api/v1/incidents/{id}/assign/": TRIAGE,
    "POST /api/v1/incidents/{id}/comment/": TRIAGE,
    "POST /api/v1/incidents/{id}/mitigate/": TRIAGE,
    "POST /api/v1/incidents/{id}/resolve/": TRIAGE,
}
# No authentication needed: the way in.
PUBLIC = {"POST /api/v1/auth/token/"}
BODY = {"reason": "role matrix", "note": "role matrix", "message": "role matrix", "comment": "role matrix"}


@pytest.fixture
def world(db: Any) -> dict[str, Any]:
    groups = {"author": AUTHORS, "pm": PROGRAM_MANAGERS, "reviewer": REVIEWERS, "oncall": ON_CALL, "auditor": AUDITORS}
    users = {name: UserFactory(username=f"matrix.{name}", groups=[group]) for name, group in groups.items()}
    users["outsider"] = UserFactory(username="matrix.outsider", groups=[])
    users["admin"] = UserFactory(username="matrix.admin", is_superuser=True)
    solution = SolutionFactory(key="matrix")
    draft = make_release(author=users["author"], solution=solution)
    in_review = submitted(author=users["author"], solution=solution)
    guardrail = Guardrail.objects.order_by("id").first()
    assert guardrail is not None
    incident, _ = incident_trigger(
        guardrail=guardrail, release_id=in_review.pk, market="US", evaluation=None, now=timezone.now()
    )
    now = timezone.now()
    freeze = FreezeWindow.objects.create(
        name="Matrix freeze", starts_at=now + timedelta(days=30), ends_at=now + timedelta(days=31), reason="test"
    )
    endpoint = NotificationEndpoint.objects.create(name="matrix", channel="webhook", target="http://127.0.0.1:9/x")
    opportunity = opportunity_create(
        actor=users["pm"],
        title="Matrix opportunity",
        contact_reasons=["order-tracking"],
        hypothesis="role matrix",
        expected_containment_lift=0.1,
        effort_weeks=1,
        confidence=0.5,
    )
    item = ChecklistItem.objects.filter(checklist__release=in_review, signer_group__name=REVIEWERS).first()
    assert item is not None
    ids = {
        "solutions": solution.pk,
        "approval-policies": ApprovalPolicy.objects.order_by("id").first().pk,  # type: ignore[union-attr]
        "checklist-templates": ChecklistTemplate.objects.order_by("id").first().pk,  # type: ignore[union-attr]
        "checklist-items": item.pk,
        "freeze-windows": freeze.pk,
        "guardrails": guardrail.pk,
        "incidents": incident.pk,
        "notification-endpoints": endpoint.pk,
        "opportunities": opportunity.pk,
        "metric-definitions": MetricDefinition.objects.order_by("id").first().pk,  # type: ignore[union-attr]
    }
    review_actions = {"approve", "reject", "request-changes"}
    # A valid request for each operation whose input is checked before the role: the table is about who may
    # act, so what is sent must be something an allowed role could send.
    bodies = {
        "POST /api/v1/approvals/": {
            "release": in_review.pk,
            "group": REVIEWERS,
            "decision": "approve",
            "content_hash": in_review.content_hash,
        },
        "POST /api/v1/releases/{id}/approve/": {"group": REVIEWERS, "content_hash": in_review.content_hash},
        "POST /api/v1/releases/{id}/promote/": {"from_stage": 1, "override": True, "reason": "role matrix"},
        "POST /api/v1/checklist-items/{id}/mark-na/": {"justification": "role matrix"},
        "POST /api/v1/incidents/{id}/assign/": {"assignee": users["oncall"].pk},
        "POST /api/v1/incidents/{id}/resolve/": {"resolution": "false_positive", "note": "role matrix"},
        "POST /api/v1/notifications/redrive/": {"all": True},
        "POST /api/v1/metric-samples/": [],
        "POST /api/v1/contact-reason-volumes/": [],
        "PATCH /api/v1/releases/{id}/": {"title": "Role matrix"},
    }
    return {
        "users": users,
        "ids": ids,
        "draft": draft.pk,
        "in_review": in_review.pk,
        "review": review_actions,
        "bodies": bodies,
    }


def _write_operations() -> list[str]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return sorted(
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method in operations
        if method in {"post", "put", "patch", "delete"}
    )


def _concrete(operation: str, world: dict[str, Any]) -> tuple[str, str]:
    method, path = operation.split(" ", 1)
    resource = path.split("/")[3]
    if resource == "releases":
        action = path.rstrip("/").split("/")[-1]
        pk = world["in_review"] if action in world["review"] else world["draft"]
    else:
        pk = world["ids"].get(resource, 0)
    return method, re.sub(r"\{[a-z_]+\}", str(pk), path)


def _observe(world: dict[str, Any], role: str, operations: list[str]) -> dict[str, int]:
    client = api_as(world["users"][role])
    observed = {}
    for operation in operations:
        method, url = _concrete(operation, world)
        body: Any = world["bodies"].get(operation, BODY)
        if method == "PUT":
            # What was read, sent back: a valid full representation.
            body = api_as(world["users"]["admin"]).get(url).json()
        # Each call in its own rolled-back savepoint: one role's allowed write never changes the next call's world.
        with transaction.atomic():
            response = getattr(client, method.lower())(url, body, format="json")
            transaction.set_rollback(True)
        observed[operation] = response.status_code
    return observed


def test_every_write_operation_is_in_the_table() -> None:
    assert set(_write_operations()) - PUBLIC == set(EXPECTED)


@pytest.mark.parametrize("role", ROLES)
def test_role_may_use_exactly_its_write_operations(world: dict[str, Any], role: str) -> None:
    operations = sorted(EXPECTED)
    observed = _observe(world, role, operations)
    wrong = {
        operation: status
        for operation, status in observed.items()
        if (status == 403) == (role in EXPECTED[operation]) or status >= 500
    }
    assert wrong == {}, f"{role}: operations answered against the table (status seen): {wrong}"
