from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from core.roles import PROGRAM_MANAGERS, REVIEWERS
from governance.models import Approval, ApprovalPolicy, ChecklistItem, ChecklistTemplate
from releases.choices import RiskLevel
from tests.conftest import api_as
from tests.factories import UserFactory
from tests.governance.helpers import submitted

pytestmark = pytest.mark.django_db


def _sign_all(release, people):
    for item in ChecklistItem.objects.filter(checklist__release=release, state="pending").select_related(
        "signer_group"
    ):
        signer = next(p for p in people if p.groups.filter(pk=item.signer_group_id).exists())
        response = api_as(signer).post(
            f"/api/v1/checklist-items/{item.pk}/sign-off/",
            {"evidence_url": "https://wiki.example.com/e/1", "note": "Checked"},
            format="json",
        )
        assert response.status_code == 200, response.content


class TestApproveEndpoint:
    def test_high_risk_walk_through_the_api(self, author, program_manager, reviewer, second_reviewer):
        release = submitted(author=author, risk_level=RiskLevel.HIGH)
        _sign_all(release, [reviewer, program_manager])
        url = f"/api/v1/releases/{release.pk}/approve/"
        for user, group in ((reviewer, REVIEWERS), (second_reviewer, REVIEWERS)):
            response = api_as(user).post(url, {"group": group, "content_hash": release.content_hash}, format="json")
            assert response.status_code == 200 and response.json()["status"] == "in_review"
        status = api_as(author).get(f"/api/v1/policy-status/{release.pk}/").json()
        assert status["missing"] == [{"group": PROGRAM_MANAGERS, "count": 1}]
        response = api_as(program_manager).post(
            url, {"group": PROGRAM_MANAGERS, "content_hash": release.content_hash, "comment": "Go"}, format="json"
        )
        assert response.status_code == 200 and response.json()["status"] == "approved"

    def test_stale_hash_answers_409_with_the_current_hash(self, high_release, reviewer):
        response = api_as(reviewer).post(
            f"/api/v1/releases/{high_release.pk}/approve/",
            {"group": REVIEWERS, "content_hash": "f" * 64},
            format="json",
        )
        assert response.status_code == 409
        assert response.json() == {
            "code": "stale_content_hash",
            "detail": response.json()["detail"],
            "current_content_hash": high_release.content_hash,
        }

    def test_superuser_author_gets_403(self):
        root = UserFactory(username="root.both", is_superuser=True)
        release = submitted(author=root)
        response = api_as(root).post(
            f"/api/v1/releases/{release.pk}/approve/",
            {"group": PROGRAM_MANAGERS, "content_hash": release.content_hash},
            format="json",
        )
        assert response.status_code == 403 and response.json()["code"] == "separation_of_duties"

    @pytest.mark.parametrize(
        "body",
        [{}, {"group": "Nope", "content_hash": "x"}, {"group": REVIEWERS}, {"group": [1], "content_hash": {"a": 1}}],
    )
    def test_bad_input_is_400_never_500(self, high_release, reviewer, body):
        response = api_as(reviewer).post(f"/api/v1/releases/{high_release.pk}/approve/", body, format="json")
        assert response.status_code == 400

    def test_reject_through_approvals_endpoint(self, high_release, reviewer):
        response = api_as(reviewer).post(
            "/api/v1/approvals/",
            {
                "release": high_release.pk,
                "group": REVIEWERS,
                "decision": "reject",
                "content_hash": high_release.content_hash,
                "comment": "Promises refunds outside policy.",
            },
            format="json",
        )
        assert response.status_code == 201 and response.json()["decision"] == "reject"
        high_release.refresh_from_db()
        assert high_release.status == "rejected"

    def test_approvals_listing_and_awaiting_me(self, high_release, reviewer, second_reviewer):
        api_as(reviewer).post(
            f"/api/v1/releases/{high_release.pk}/approve/",
            {"group": REVIEWERS, "content_hash": high_release.content_hash},
            format="json",
        )
        listing = api_as(second_reviewer).get(f"/api/v1/approvals/?release={high_release.pk}").json()
        assert listing["count"] == 1 and listing["results"][0]["approver"] == reviewer.username
        assert api_as(reviewer).get("/api/v1/approvals/awaiting-me/").json() == []
        waiting = api_as(second_reviewer).get("/api/v1/approvals/awaiting-me/").json()
        assert [row["release"] for row in waiting] == [high_release.pk]
        assert Approval.objects.count() == 1


class TestChecklistEndpoints:
    def test_checklist_of_a_release(self, high_release, reviewer):
        data = api_as(reviewer).get(f"/api/v1/checklists/?release={high_release.pk}").json()
        assert data["count"] == 1
        checklist = data["results"][0]
        assert checklist["gate"] == "review" and checklist["status"] == "open" and checklist["items"]

    def test_sign_off_errors(self, high_release, reviewer):
        item = ChecklistItem.objects.filter(
            checklist__release=high_release, evidence_required=True, signer_group__name=REVIEWERS
        ).first()
        url = f"/api/v1/checklist-items/{item.pk}/sign-off/"
        assert api_as(reviewer).post(url, {}, format="json").status_code == 400
        assert api_as(reviewer).post(url, {"evidence_url": "not a url"}, format="json").status_code == 400
        ok = api_as(reviewer).post(url, {"evidence_url": "https://wiki.example.com/x"}, format="json")
        assert ok.status_code == 200 and ok.json()["signed_by"] == reviewer.username
        again = api_as(reviewer).post(url, {"evidence_url": "https://wiki.example.com/x"}, format="json")
        assert again.status_code == 409 and again.json()["code"] == "item_already_resolved"

    def test_awaiting_my_sign_off(self, high_release, reviewer, oncall):
        mine = api_as(reviewer).get("/api/v1/checklist-items/awaiting-me/").json()
        assert mine and {row["signer_group"] for row in mine} == {REVIEWERS}
        assert api_as(oncall).get("/api/v1/checklist-items/awaiting-me/").json() == []

    def test_template_versioning(self, program_manager):
        active = ChecklistTemplate.objects.active().get(gate="rollout", risk_level="medium")
        client = api_as(program_manager)
        assert (
            client.patch(f"/api/v1/checklist-templates/{active.pk}/", {"name": "x"}, format="json").status_code == 409
        )
        draft = client.post(f"/api/v1/checklist-templates/{active.pk}/new-version/").json()
        assert draft["status"] == "draft" and draft["version"] == active.version + 1
        items = [{"question": "Is the rollback runbook linked?", "signer_group": "On-call", "evidence_required": True}]
        edited = client.patch(f"/api/v1/checklist-templates/{draft['id']}/", {"items": items}, format="json")
        assert edited.status_code == 200 and len(edited.json()["items"]) == 1
        activated = client.post(f"/api/v1/checklist-templates/{draft['id']}/activate/")
        assert activated.status_code == 200 and activated.json()["status"] == "active"
        active.refresh_from_db()
        assert active.status == "retired"

    def test_bad_template_is_400(self, program_manager):
        response = api_as(program_manager).post(
            "/api/v1/checklist-templates/",
            {"gate": "nope", "risk_level": "low", "name": "x", "items": []},
            format="json",
        )
        assert response.status_code == 400


class TestPolicyAndFreezeEndpoints:
    def test_policy_create_and_edit(self, program_manager, solution):
        client = api_as(program_manager)
        created = client.post(
            "/api/v1/approval-policies/",
            {
                "name": "Refunds critical",
                "risk_level": "critical",
                "solution": solution.pk,
                "validity_days": 7,
                "requirements": [
                    {"group": PROGRAM_MANAGERS, "minimum_count": 2},
                    {"group": REVIEWERS, "minimum_count": 3},
                ],
            },
            format="json",
        )
        assert created.status_code == 201, created.content
        duplicate = client.post(
            "/api/v1/approval-policies/",
            {"name": "again", "risk_level": "critical", "solution": solution.pk, "requirements": []},
            format="json",
        )
        assert duplicate.status_code == 400
        edited = client.patch(
            f"/api/v1/approval-policies/{created.json()['id']}/",
            {"requirements": [{"group": REVIEWERS, "minimum_count": 4}]},
            format="json",
        )
        assert edited.json()["requirements"] == [{"group": REVIEWERS, "minimum_count": 4}]

    def test_freeze_window_lifecycle(self, program_manager):
        client = api_as(program_manager)
        now = timezone.now()
        body = {
            "name": "Black Friday",
            "starts_at": now.isoformat(),
            "ends_at": (now + timedelta(days=3)).isoformat(),
            "markets": ["US", "CA"],
            "reason": "Peak sales",
        }
        created = client.post("/api/v1/freeze-windows/", body, format="json")
        assert created.status_code == 201 and created.json()["created_by"] == program_manager.username
        backwards = {**body, "ends_at": (now - timedelta(days=1)).isoformat()}
        assert client.post("/api/v1/freeze-windows/", backwards, format="json").status_code == 400
        url = f"/api/v1/freeze-windows/{created.json()['id']}/cancel/"
        assert client.post(url, {}, format="json").status_code == 400
        assert client.post(url, {"reason": "Moved"}, format="json").json()["cancelled_at"]
        assert client.post(url, {"reason": "Again"}, format="json").status_code == 409
        assert client.delete(f"/api/v1/freeze-windows/{created.json()['id']}/").status_code in (403, 405)

    def test_start_rollout_in_freeze_is_409(self, author, program_manager, crew):
        from governance.demo import sign_checklist
        from governance.models import ChecklistGate
        from governance.services import freeze_window_create
        from tests.governance.helpers import approved

        release = approved(submitted(author=author, risk_level=RiskLevel.LOW), crew)
        sign_checklist(release=release, gate=ChecklistGate.ROLLOUT, people=crew)
        now = timezone.now()
        freeze_window_create(
            actor=program_manager, name="Freeze", starts_at=now, ends_at=now + timedelta(hours=4), reason="Peak"
        )
        response = api_as(program_manager).post(f"/api/v1/releases/{release.pk}/start-rollout/", {}, format="json")
        assert response.status_code == 409 and response.json()["code"] == "freeze_window"


class TestPolicyInputsFoundByFuzzing:
    """Each of these answered 500 to schemathesis once; they must be clean 400s."""

    def test_policy_without_risk_level(self, program_manager):
        response = api_as(program_manager).post(
            "/api/v1/approval-policies/", {"name": "0", "requirements": []}, format="json"
        )
        assert response.status_code == 400 and "risk_level" in response.data

    def test_patch_requirement_without_group(self, program_manager):
        policy = ApprovalPolicy.objects.filter(is_active=True).first()
        count = policy.requirements.count()
        response = api_as(program_manager).patch(
            f"/api/v1/approval-policies/{policy.pk}/", {"requirements": [{"minimum_count": 1}]}, format="json"
        )
        assert response.status_code == 400 and "requirements" in response.data
        assert policy.requirements.count() == count
