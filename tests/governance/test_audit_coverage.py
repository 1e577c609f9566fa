"""Every write of a governed model in releases and governance leaves an AuditEvent naming the object.

Each service that creates, edits or moves a governed row is called once here; the test fails when one of them
saves without an audit event for the object it wrote (e.g. the template version that an activation retires).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db.models import Model
from django.utils import timezone

from core.models import AuditEvent
from governance import services as gov
from governance.models import ChecklistGate, ChecklistItem, ChecklistTemplate, TemplateStatus
from releases import services as rel
from releases.choices import Audience, RiskLevel
from releases.models import Release
from tests.factories import SolutionFactory, make_release
from tests.governance.helpers import submitted

pytestmark = pytest.mark.django_db


@contextmanager
def audits(*objects: Callable[[], Model] | Model) -> Iterator[None]:
    """Asserts that the block writes at least one new AuditEvent for each object (given, or returned by a
    callable evaluated after the block, for objects the block creates)."""
    last = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    yield
    new = list(AuditEvent.objects.filter(id__gt=last).values_list("object_type", "object_id", "action"))
    assert new, "the service wrote no AuditEvent at all"
    for each in objects:
        obj = each() if callable(each) else each
        key = (obj._meta.label_lower, str(obj.pk))
        assert any(event[:2] == key for event in new), f"no AuditEvent names {key}; written: {new}"


def _latest(model: type[Model]) -> Callable[[], Model]:
    return lambda: model._default_manager.order_by("-pk").first()  # type: ignore[return-value]


def test_solution_and_release_services_audit(author: Any, program_manager: Any) -> None:
    from releases.models import AutomationSolution

    with audits(_latest(AutomationSolution)):
        solution = rel.solution_create(actor=program_manager, key="audit-me", name="Audit me", audience=Audience.BUYERS)
    with audits(solution):
        rel.solution_update(solution=solution, actor=program_manager, name="Audited")
    with audits(_latest(Release)):
        release = make_release(author=author, solution=solution)
    with audits(release):
        rel.release_update(release=release, actor=author, title="A new title")
    with audits(release):
        rel.release_submit(release=release, actor=author)
    with audits(release):
        rel.release_request_changes(release=release, actor=program_manager, reason="More detail")
    with audits(release):
        rel.release_cancel(release=release, actor=program_manager, reason="Superseded")


def test_approval_and_checklist_services_audit(author: Any, crew: list[Any], reviewer: Any) -> None:
    release = submitted(author=author, risk_level=RiskLevel.HIGH)
    items = list(ChecklistItem.objects.filter(checklist__release=release).order_by("position"))
    optional = next(item for item in items if not item.required)
    with audits(optional):
        gov.checklist_item_mark_na(item=optional, actor=reviewer, justification="Not relevant here")
    required = next(item for item in items if item.required)
    with audits(required):
        gov.checklist_item_sign_off(item=required, actor=reviewer, evidence_url="https://wiki.example.com/e", note="")
    release.refresh_from_db()
    from governance.models import Approval

    with audits(_latest(Approval)):
        gov.approval_record(release=release, approver=reviewer, group="Reviewers", content_hash=release.content_hash)
    approval = Approval.objects.get(approver=reviewer)
    with audits(approval):
        gov.approvals_dismiss(release=release, actor=None, reason="Test dismissal")


def test_policy_template_and_freeze_window_services_audit(program_manager: Any) -> None:
    from governance.models import ApprovalPolicy, FreezeWindow

    with audits(_latest(ApprovalPolicy)):
        policy = gov.approval_policy_create(
            actor=program_manager,
            name="Audited policy",
            risk_level=RiskLevel.LOW,
            solution=SolutionFactory(),
            requirements=[gov.RequirementSpec(group="Program managers", minimum_count=1)],
        )
    with audits(policy):
        gov.approval_policy_update(policy=policy, actor=program_manager, validity_days=3)

    active = ChecklistTemplate.objects.get(
        gate=ChecklistGate.REVIEW, risk_level=RiskLevel.HIGH, status=TemplateStatus.ACTIVE
    )
    with audits(_latest(ChecklistTemplate)):
        draft = gov.checklist_template_new_version(template=active, actor=program_manager)
    with audits(draft):
        gov.checklist_template_update(template=draft, actor=program_manager, name="Review (audited)")
    # Activating retires the previous version: both rows change, both are named.
    with audits(draft, active):
        gov.checklist_template_activate(template=draft, actor=program_manager)

    now = timezone.now()
    with audits(_latest(FreezeWindow)):
        window = gov.freeze_window_create(
            actor=program_manager,
            name="Audit freeze",
            starts_at=now + timedelta(days=1),
            ends_at=now + timedelta(days=2),
            reason="Peak",
        )
    with audits(window):
        gov.freeze_window_update(window=window, actor=program_manager, name="Audit freeze (moved)")
    with audits(window):
        gov.freeze_window_cancel(window=window, actor=program_manager, reason="Not needed")
