from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from core.models import AuditEvent
from core.roles import AUTHORS
from releases import services
from releases.choices import ReleaseStatus as S
from releases.models import AutomationSolution, Release
from tests.concurrency import run_at_once
from tests.conftest import api_as
from tests.factories import UserFactory, advance_release, make_release

pytestmark = pytest.mark.django_db

RELEASES = "/api/v1/releases/"


def _release_payload(solution_id: int, **overrides):
    payload = {
        "solution": solution_id,
        "title": "Ask for the order number first",
        "change_summary": "Fewer handoffs for order-status questions.",
        "risk_level": "medium",
        "system_prompt": "You are the order-status assistant.",
        "resolution_flow": {"steps": ["ask_order", "lookup", "answer"]},
        "model_name": "gpt-4o-2024-08-06",
        "model_parameters": {"temperature": 0.1},
        "tools": ["order_lookup"],
        "knowledge_base_version": "kb-1",
        "markets": ["US", "DE"],
        "stages": [
            {"name": "Canary", "traffic_percent": 5, "markets": ["US"], "min_hold": "01:00:00", "min_sample_size": 300},
            {"name": "Full", "traffic_percent": 100},
        ],
    }
    payload.update(overrides)
    return payload


class TestAuth:
    def test_every_endpoint_needs_authentication(self, draft_release):
        client = APIClient()
        for url in [
            RELEASES,
            f"{RELEASES}{draft_release.pk}/",
            "/api/v1/solutions/",
            "/api/v1/audit-events/",
            "/api/schema/",
        ]:
            assert client.get(url).status_code in (401, 403), url
        assert client.post(f"{RELEASES}{draft_release.pk}/submit/").status_code in (401, 403)

    def test_token_login(self, author):
        client = APIClient()
        response = client.post("/api/v1/auth/token/", {"username": author.username, "password": "pass-1234"})
        assert response.status_code == 200
        client.credentials(HTTP_AUTHORIZATION=f"Token {response.data['token']}")
        assert client.get(RELEASES).status_code == 200

    def test_bad_credentials(self, author):
        response = APIClient().post("/api/v1/auth/token/", {"username": author.username, "password": "wrong"})
        assert response.status_code == 400

    def test_outsider_sees_nothing(self, outsider, draft_release):
        assert api_as(outsider).get(RELEASES).status_code == 403

    def test_schema_and_docs(self, auditor):
        client = api_as(auditor)
        schema = client.get("/api/schema/")
        assert schema.status_code == 200
        assert b"/api/v1/releases/{id}/start-rollout/" in schema.content
        assert client.get("/api/docs/").status_code == 200


class TestReleaseCrud:
    def test_author_creates_release_with_stages(self, author, solution):
        response = api_as(author).post(RELEASES, _release_payload(solution.pk), format="json")
        assert response.status_code == 201, response.data
        body = response.data
        assert body["version"] == 1 and body["status"] == "draft" and len(body["content_hash"]) == 64
        assert [s["traffic_percent"] for s in body["stages"]] == [5, 100]
        assert body["author"] == author.username
        release = Release.objects.get(pk=body["id"])
        assert release.history.first().history_user == author
        assert AuditEvent.objects.filter(release_id=release.pk, action="release.created").exists()

    @pytest.mark.parametrize(
        ("overrides", "field"),
        [
            ({"stages": [{"name": "a", "traffic_percent": 60}, {"name": "b", "traffic_percent": 40}]}, "stages"),
            ({"stages": [{"name": "a", "traffic_percent": 0}]}, "stages"),
            ({"risk_level": "extreme"}, "risk_level"),
            ({"markets": "US"}, "markets"),
            ({"solution": 999999}, "solution"),
            ({"resolution_flow": "not json object"}, "resolution_flow"),
            ({"title": ""}, "title"),
            ({"stages": [{"name": "a", "traffic_percent": 100, "min_hold": "soon"}]}, "stages"),
        ],
    )
    def test_bad_input_is_400_and_writes_nothing(self, author, solution, overrides, field):
        response = api_as(author).post(RELEASES, _release_payload(solution.pk, **overrides), format="json")
        assert response.status_code == 400, response.data
        assert field in response.data
        assert not Release.objects.exists()

    def test_garbage_body_is_400(self, author):
        response = api_as(author).generic("POST", RELEASES, "{not json", content_type="application/json")
        assert response.status_code == 400

    def test_reviewer_cannot_create(self, reviewer, solution):
        assert api_as(reviewer).post(RELEASES, _release_payload(solution.pk), format="json").status_code == 403

    def test_edit_draft_replaces_stages_and_changes_hash(self, author, draft_release):
        response = api_as(author).patch(
            f"{RELEASES}{draft_release.pk}/",
            {"stages": [{"name": "Canary", "traffic_percent": 10}, {"name": "Full", "traffic_percent": 100}]},
            format="json",
        )
        assert response.status_code == 200, response.data
        assert [s["traffic_percent"] for s in response.data["stages"]] == [10, 100]
        assert response.data["content_hash"] != draft_release.content_hash

    def test_edit_outside_draft_is_409(self, author, program_manager, draft_release):
        advance_release(draft_release, S.IN_REVIEW, program_manager=program_manager)
        response = api_as(author).patch(f"{RELEASES}{draft_release.pk}/", {"system_prompt": "x"}, format="json")
        assert response.status_code == 409
        assert response.data["code"] == "content_frozen"

    def test_delete_is_not_offered(self, superuser, program_manager, draft_release):
        assert api_as(superuser).delete(f"{RELEASES}{draft_release.pk}/").status_code == 405
        assert api_as(program_manager).delete(f"{RELEASES}{draft_release.pk}/").status_code == 403
        assert Release.objects.filter(pk=draft_release.pk).exists()

    def test_filters(self, author, program_manager, solution):
        advance_release(make_release(author=author, solution=solution), S.IN_REVIEW, program_manager=program_manager)
        make_release(author=author, solution=solution)
        client = api_as(program_manager)
        assert client.get(RELEASES, {"status": "draft"}).data["count"] == 1
        assert client.get(RELEASES, {"status": ["draft", "in_review"]}).data["count"] == 2
        assert client.get(RELEASES, {"solution": solution.pk}).data["count"] == 2
        assert client.get(RELEASES, {"status": "nonsense"}).status_code == 400

    def test_list_query_count_does_not_grow(self, author, program_manager, solution, django_assert_max_num_queries):
        for _ in range(8):
            make_release(author=author, solution=solution)
        client = api_as(program_manager)
        with django_assert_max_num_queries(12):
            response = client.get(RELEASES)
        assert response.data["count"] == 8


class TestReleaseListRendering:
    """The list renders plain rows (releases.api.listing); each item must be the detail endpoint's JSON."""

    @pytest.fixture
    def fleet(self, author, second_author, program_manager, superuser, solution):
        shared = make_release(author=author, solution=solution, title="Shared draft", markets=["US", "DE", "FR"])
        services.release_reassign(release=shared, actor=author, co_authors=[second_author])
        services.release_update(release=shared, actor=second_author, change_summary="Edited by the co-author.")
        by_root = make_release(author=superuser, solution=solution, title="Written by the superuser")
        services.release_submit(release=by_root, actor=superuser)
        in_review = make_release(author=author, solution=solution, title="In review", is_emergency=True)
        services.release_submit(release=in_review, actor=author)
        live = make_release(author=author, solution=solution, title="Rolling out")
        live = advance_release(live, S.ROLLING_OUT, program_manager=program_manager)
        return {"shared": shared, "by_root": by_root, "in_review": in_review, "live": live}

    @pytest.mark.parametrize(
        "viewer", ["author", "second_author", "superuser", "reviewer", "program_manager", "oncall", "auditor"]
    )
    def test_each_item_is_the_detail_json(self, request, fleet, viewer):
        client = api_as(request.getfixturevalue(viewer))
        listed = client.get(RELEASES, {"limit": 100})
        assert listed.status_code == 200
        assert listed.json()["count"] == Release.objects.count()
        for item in listed.json()["results"]:
            assert item == client.get(f"{RELEASES}{item['id']}/").json()

    def test_transitions_follow_ownership_and_separation_of_duties(self, fleet, author, second_author, superuser):
        def transitions(user, release):
            items = api_as(user).get(RELEASES, {"limit": 100}).json()["results"]
            return next(item["available_transitions"] for item in items if item["id"] == release.pk)

        assert "submit" in transitions(second_author, fleet["shared"])  # a co-author submits
        assert "approve" not in transitions(superuser, fleet["by_root"])  # never approve what you wrote
        assert "approve" in transitions(superuser, fleet["in_review"])
        assert transitions(author, fleet["in_review"]) == []

    def test_values_the_fields_would_change_are_rendered_by_the_fields(self, author, solution):
        # The list passes lists of strings and dicts with string keys through unchanged; anything else (here a
        # number in ``tools``, written past the serializer) must still come out as ListField(CharField) writes it.
        release = make_release(author=author, solution=solution)
        Release.objects.filter(pk=release.pk).update(tools=["lookup", 7], model_parameters={"top_p": None, "n": [1]})
        client = api_as(author)
        (item,) = client.get(RELEASES).json()["results"]
        assert item["tools"] == ["lookup", "7"]
        assert item == client.get(f"{RELEASES}{release.pk}/").json()

    def test_each_release_lists_its_own_co_authors(self, author, second_author, solution):
        third = UserFactory(username="cy.author", groups=[AUTHORS])
        shared = make_release(author=author, solution=solution)
        services.release_reassign(release=shared, actor=author, co_authors=[third, second_author])
        alone = make_release(author=author, solution=solution)
        client = api_as(author)
        items = {item["id"]: item for item in client.get(RELEASES).json()["results"]}
        assert sorted(items[shared.pk]["co_authors"]) == sorted([second_author.pk, third.pk])
        assert items[alone.pk]["co_authors"] == []
        for release in (shared, alone):
            assert items[release.pk] == client.get(f"{RELEASES}{release.pk}/").json()

    def test_page_and_count_are_one_statement(self, author, program_manager, solution):
        for _ in range(3):
            make_release(author=author, solution=solution)
        client = api_as(program_manager)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(RELEASES, {"limit": 2})
        assert response.json()["count"] == 3 and len(response.json()["results"]) == 2
        statements = [query["sql"] for query in queries.captured_queries]
        assert not [sql for sql in statements if sql.startswith("SELECT COUNT(*)")], statements
        # The co-author ids come with the releases, not from a read of the link table of their own.
        assert not [sql for sql in statements if sql.startswith('SELECT "releases_release_co_authors"')], statements

    @pytest.mark.parametrize(
        ("params", "count", "shown"),
        [
            ({"limit": 2, "offset": 2}, 3, 1),
            ({"limit": 2, "offset": 3}, 3, 0),  # past the end: no row carries the count
            ({"limit": 2, "offset": 50}, 3, 0),
            ({"status": "draft", "limit": 1}, 2, 1),  # a MultipleChoiceFilter makes the queryset DISTINCT
            ({"status": "in_review"}, 1, 1),
            ({"is_emergency": "true"}, 0, 0),
        ],
    )
    def test_count_and_page_with_offsets_and_filters(self, author, program_manager, solution, params, count, shown):
        for _ in range(2):
            make_release(author=author, solution=solution)
        services.release_submit(release=make_release(author=author, solution=solution), actor=author)
        body = api_as(program_manager).get(RELEASES, params).json()
        assert (body["count"], len(body["results"])) == (count, shown)

    def test_ordering_parameter_still_orders_the_page(self, author, program_manager, solution):
        first, second = (make_release(author=author, solution=solution, title=t) for t in ("first", "second"))
        client = api_as(program_manager)
        assert [r["id"] for r in client.get(RELEASES, {"ordering": "created_at"}).json()["results"]] == [
            first.pk,
            second.pk,
        ]
        assert [r["id"] for r in client.get(RELEASES).json()["results"]] == [second.pk, first.pk]

    def test_queries_do_not_grow_with_releases_in_review(self, author, superuser, solution):
        def count_queries() -> int:
            client = api_as(superuser)
            with CaptureQueriesContext(connection) as queries:
                response = client.get(RELEASES)
            assert response.status_code == 200
            return len(queries.captured_queries)

        for _ in range(2):
            services.release_submit(release=make_release(author=author, solution=solution), actor=author)
        few = count_queries()
        for _ in range(6):
            services.release_submit(release=make_release(author=author, solution=solution), actor=author)
        assert count_queries() == few


class TestTransitionsApi:
    def test_submit_then_409_on_repeat(self, author, draft_release):
        client = api_as(author)
        response = client.post(f"{RELEASES}{draft_release.pk}/submit/")
        assert response.status_code == 200 and response.data["status"] == "in_review"
        before = AuditEvent.objects.count()
        again = client.post(f"{RELEASES}{draft_release.pk}/submit/")
        assert again.status_code == 409
        assert again.data["code"] == "illegal_transition" and "in review" in again.data["detail"]
        assert AuditEvent.objects.count() == before

    def test_pause_needs_reason_400(self, oncall, program_manager, draft_release):
        advance_release(draft_release, S.ROLLING_OUT, program_manager=program_manager)
        response = api_as(oncall).post(f"{RELEASES}{draft_release.pk}/pause/", {}, format="json")
        assert response.status_code == 400 and "reason" in response.data
        response = api_as(oncall).post(f"{RELEASES}{draft_release.pk}/pause/", {"reason": "CSAT"}, format="json")
        assert response.status_code == 200 and response.data["status"] == "paused"

    def test_role_refusal_is_403(self, reviewer, program_manager, draft_release):
        advance_release(draft_release, S.APPROVED, program_manager=program_manager)
        response = api_as(reviewer).post(f"{RELEASES}{draft_release.pk}/start-rollout/")
        assert response.status_code == 403 and response.data["code"] == "permission_denied"

    def test_hold_time_guard_is_409_with_code(self, program_manager, draft_release):
        advance_release(draft_release, S.ROLLING_OUT, program_manager=program_manager)
        client = api_as(program_manager)
        response = client.post(f"{RELEASES}{draft_release.pk}/promote/", {"from_stage": 1}, format="json")
        assert response.status_code == 409 and response.data["code"] == "hold_time"
        body = {"override": True, "reason": "sample reached", "from_stage": 1}
        response = client.post(f"{RELEASES}{draft_release.pk}/promote/", body, format="json")
        assert response.status_code == 200 and response.data["current_stage"]["position"] == 2

    def test_promote_names_the_stage_it_promotes_from(self, program_manager, draft_release):
        advance_release(draft_release, S.ROLLING_OUT, program_manager=program_manager)
        client = api_as(program_manager)
        url = f"{RELEASES}{draft_release.pk}/promote/"
        missing = client.post(url, {"override": True, "reason": "sample reached"}, format="json")
        assert missing.status_code == 400 and "from_stage" in missing.data
        stale = client.post(url, {"override": True, "reason": "sample reached", "from_stage": 2}, format="json")
        assert stale.status_code == 409 and stale.data["code"] == "stale_stage"
        draft_release.refresh_from_db()
        assert draft_release.current_stage.position == 1

    def test_incomplete_submit_lists_problems(self, author, solution):
        release = Release.objects.get(
            pk=api_as(author).post(RELEASES, {"solution": solution.pk, "title": "t"}, format="json").data["id"]
        )
        response = api_as(author).post(f"{RELEASES}{release.pk}/submit/")
        assert response.status_code == 409 and response.data["code"] == "incomplete_release"
        assert "system_prompt" in response.data["problems"]

    def test_unknown_release_404(self, author):
        assert api_as(author).post(f"{RELEASES}424242/submit/").status_code == 404

    def test_available_transitions_follow_the_user(self, author, program_manager, oncall, draft_release):
        advance_release(draft_release, S.ROLLING_OUT, program_manager=program_manager)
        url = f"{RELEASES}{draft_release.pk}/"
        assert set(api_as(program_manager).get(url).data["available_transitions"]) == {"promote", "pause", "rollback"}
        assert set(api_as(oncall).get(url).data["available_transitions"]) == {"pause", "rollback"}
        assert api_as(author).get(url).data["available_transitions"] == []


class TestSolutionsAndAudit:
    def test_solution_create_and_archive(self, author):
        client = api_as(author)
        response = client.post(
            "/api/v1/solutions/", {"key": "seller-fees", "name": "Seller fees", "audience": "sellers"}, format="json"
        )
        assert response.status_code == 201
        solution_id = response.data["id"]
        assert (
            client.post(
                "/api/v1/solutions/", {"key": "seller-fees", "name": "Dup", "audience": "sellers"}, format="json"
            ).status_code
            == 400
        )
        assert client.patch(f"/api/v1/solutions/{solution_id}/", {"is_active": False}, format="json").status_code == 200
        assert AutomationSolution.objects.get(pk=solution_id).history.count() == 2

    def test_audit_events_filter_by_release(self, auditor, author, draft_release, solution):
        other = make_release(author=author, solution=solution)
        response = api_as(auditor).get("/api/v1/audit-events/", {"release": draft_release.pk})
        assert response.status_code == 200
        assert {row["release"] for row in response.data["results"]} == {draft_release.pk}
        assert other.pk not in {row["release"] for row in response.data["results"]}

    def test_audit_events_are_read_only(self, superuser):
        client = api_as(superuser)
        assert client.post("/api/v1/audit-events/", {}, format="json").status_code == 405


class TestInputsFoundByFuzzing:
    """Each of these answered 500 to schemathesis once; they must be clean 400s (or succeed)."""

    def test_solution_created_inactive(self, author):
        response = api_as(author).post(
            "/api/v1/solutions/", {"key": "k0", "name": "n", "audience": "buyers", "is_active": False}, format="json"
        )
        assert response.status_code == 201 and response.data["is_active"] is False


@pytest.mark.django_db(transaction=True)
def test_two_people_create_the_same_solution_key_at_once(author, second_author):
    def create(user):
        return api_as(user).post(
            "/api/v1/solutions/",
            {"key": "seller-fees", "name": "Seller fees", "audience": "sellers"},
            format="json",
        )

    codes = [response.status_code for response in run_at_once(lambda: create(author), lambda: create(second_author))]
    assert sorted(codes)[0] == 201 and sorted(codes)[1] in (400, 409), codes
    assert AutomationSolution.objects.filter(key="seller-fees").count() == 1
