from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from core.models import AuditEvent
from releases import services
from releases.choices import ReleaseStatus as S
from releases.models import Release
from tests.conftest import admin_as
from tests.factories import advance_release, make_release, sign_open_checklists

pytestmark = pytest.mark.django_db

ROLES = ["author", "program_manager", "reviewer", "oncall", "auditor", "superuser"]


def _messages(response: Any) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.mark.parametrize("persona", ROLES)
def test_every_page_loads_for_every_role(request, persona, draft_release, program_manager):
    advance_release(make_release(author=draft_release.author), S.ROLLING_OUT, program_manager=program_manager)
    client = admin_as(request.getfixturevalue(persona))
    event = AuditEvent.objects.first()
    urls = [
        reverse("admin:index"),
        reverse("admin:releases_release_changelist"),
        reverse("admin:releases_release_changelist") + "?status__exact=rolling_out",
        reverse("admin:releases_release_change", args=[draft_release.pk]),
        reverse("admin:releases_release_history", args=[draft_release.pk]),
        reverse("admin:releases_automationsolution_changelist"),
        reverse("admin:releases_automationsolution_change", args=[draft_release.solution_id]),
        reverse("admin:releases_automationsolution_history", args=[draft_release.solution_id]),
        reverse("admin:core_auditevent_changelist"),
        reverse("admin:core_auditevent_change", args=[event.pk]),
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (persona, url, response.status_code)


def test_outsider_is_kept_out(outsider, draft_release):
    client = admin_as(outsider)
    assert client.get(reverse("admin:releases_release_changelist")).status_code == 403
    response = client.post(
        reverse("admin:releases_release_transition", args=[draft_release.pk, "submit"]), follow=False
    )
    assert response.status_code == 302
    draft_release.refresh_from_db()
    assert draft_release.status == S.DRAFT


@pytest.mark.parametrize(("persona", "allowed"), [("author", True), ("program_manager", False), ("reviewer", False)])
def test_add_page_follows_role(request, persona, allowed):
    response = admin_as(request.getfixturevalue(persona)).get(reverse("admin:releases_release_add"))
    assert response.status_code == (200 if allowed else 403)


def test_author_creates_release_with_stages_through_the_service(author, solution):
    data = {
        "solution": solution.pk,
        "title": "Ask for the order number first",
        "change_summary": "Fewer handoffs.",
        "risk_level": "low",
        "system_prompt": "You are the order-status assistant.",
        # Authored as readable lines and checkboxes, stored as structured content.
        "resolution_flow": "ask\nanswer\n",
        "model_name": "gpt-4o-2024-08-06",
        "model_parameters": 'temperature = 0.1\nstream = false\nstop = "END"',
        "tools": "order_lookup\n",
        "knowledge_base_version": "kb-1",
        "markets": ["US"],
        "verification_window": "7 00:00:00",
        "stages-TOTAL_FORMS": "2",
        "stages-INITIAL_FORMS": "0",
        "stages-MIN_NUM_FORMS": "0",
        "stages-MAX_NUM_FORMS": "1000",
        "stages-0-position": "1",
        "stages-0-name": "Canary",
        "stages-0-traffic_percent": "10",
        "stages-0-markets": ["US"],
        "stages-0-min_hold": "01:00:00",
        "stages-0-min_sample_size": "100",
        "stages-1-position": "2",
        "stages-1-name": "Full",
        "stages-1-traffic_percent": "100",
        "stages-1-min_hold": "00:00:00",
        "stages-1-min_sample_size": "0",
    }
    response = admin_as(author).post(reverse("admin:releases_release_add"), data)
    assert response.status_code == 302, response.context and response.context.get("errors")
    release = Release.objects.get()
    assert release.author == author and release.version == 1
    assert [s.traffic_percent for s in release.ordered_stages] == [10, 100]
    assert [s.markets for s in release.ordered_stages] == [["US"], []]
    assert release.resolution_flow == {"steps": ["ask", "answer"]}
    assert release.model_parameters == {"temperature": 0.1, "stream": False, "stop": "END"}
    assert (release.tools, release.markets) == (["order_lookup"], ["US"])
    assert release.content_hash == release.compute_content_hash()
    assert release.history.first().history_user == author
    assert AuditEvent.objects.filter(release_id=release.pk, action="release.created").exists()

    # A bad plan comes back as a form error and writes nothing.
    data["stages-1-traffic_percent"] = "5"
    response = admin_as(author).post(reverse("admin:releases_release_add"), data)
    assert response.status_code == 200
    assert "higher than the stage before" in response.content.decode()
    assert Release.objects.count() == 1


def _stage_rows(*rows: dict[str, Any], initial: int = 0) -> dict[str, Any]:
    data: dict[str, Any] = {
        "stages-TOTAL_FORMS": str(len(rows)),
        "stages-INITIAL_FORMS": str(initial),
        "stages-MIN_NUM_FORMS": "0",
        "stages-MAX_NUM_FORMS": "1000",
    }
    for index, row in enumerate(rows):
        data.update({f"stages-{index}-{key}": value for key, value in row.items()})
    return data


def test_stage_markets_are_checkboxes_limited_to_the_release_markets(author, solution):
    page = admin_as(author).get(reverse("admin:releases_release_add")).content.decode()
    # The stage rows offer the known markets as checkboxes, like the release's own markets: no code to type.
    assert 'type="checkbox" name="stages-0-markets" value="DE"' in page
    assert 'name="stages-0-markets" type="text"' not in page and 'type="text" name="stages-0-markets"' not in page

    release_fields = {
        "solution": solution.pk,
        "title": "Canary in Germany",
        "risk_level": "low",
        "system_prompt": "You are the order-status assistant.",
        "model_name": "gpt-4o-2024-08-06",
        "markets": ["US", "FR"],
        "verification_window": "7 00:00:00",
    }
    canary = {"position": "1", "name": "Canary", "traffic_percent": "10", "min_hold": "01:00:00"}
    canary["min_sample_size"] = "0"
    full = {"position": "2", "name": "Full", "traffic_percent": "100", "min_hold": "0", "min_sample_size": "0"}
    events_before = AuditEvent.objects.count()

    response = admin_as(author).post(
        reverse("admin:releases_release_add"),
        {**release_fields, **_stage_rows({**canary, "markets": ["DE", "US"]}, full)},
    )
    assert response.status_code == 200
    row_errors = response.context["inline_admin_formsets"][0].formset.forms[0].errors
    assert row_errors["markets"] == [
        "DE is not among the release's markets (FR, US): tick it on the release above, or untick it here."
    ]
    assert "DE is not among the release&#x27;s markets (FR, US)" in response.content.decode()
    assert not Release.objects.exists() and AuditEvent.objects.count() == events_before

    # A code that is no market at all is refused by the choices themselves.
    response = admin_as(author).post(
        reverse("admin:releases_release_add"),
        {**release_fields, **_stage_rows({**canary, "markets": ["XX"]}, full)},
    )
    assert response.status_code == 200
    assert "XX is not one of the available choices" in response.content.decode()
    assert not Release.objects.exists()

    # Ticking the market on the release in the same submission makes the stage valid. (The flow, parameters and
    # tools boxes are left out of this POST on purpose: missing boxes read as empty, never as a database NULL.)
    response = admin_as(author).post(
        reverse("admin:releases_release_add"),
        {**release_fields, "markets": ["US", "FR", "DE"], **_stage_rows({**canary, "markets": ["DE"]}, full)},
    )
    assert response.status_code == 302
    release = Release.objects.get()
    assert [stage.markets for stage in release.ordered_stages] == [["DE"], []]
    assert (release.model_parameters, release.tools) == ({}, [])


def test_changing_a_stage_to_a_market_outside_the_release_writes_nothing(author, draft_release):
    url = reverse("admin:releases_release_change", args=[draft_release.pk])
    stages = list(draft_release.ordered_stages)
    form = admin_as(author).get(url).context["adminform"].form
    data: dict[str, Any] = {name: form[name].value() for name in ("title", "risk_level", "system_prompt", "model_name")}
    data |= {
        "change_summary": draft_release.change_summary,
        "resolution_flow": "identify_order\ncheck_eligibility\nexplain\noffer_handoff",
        "model_parameters": "temperature = 0.2",
        "tools": "order_lookup\nrefund_policy",
        "knowledge_base_version": draft_release.knowledge_base_version,
        "markets": draft_release.markets,
        "verification_window": "7 00:00:00",
        "_continue": "Save",
    }
    rows = [
        {
            "id": str(stage.pk),
            "release": str(draft_release.pk),
            "position": str(stage.position),
            "name": stage.name,
            "traffic_percent": str(stage.traffic_percent),
            "markets": ["FR"] if index == 0 else list(stage.markets),
            "min_hold": str(stage.min_hold),
            "min_sample_size": str(stage.min_sample_size),
        }
        for index, stage in enumerate(stages)
    ]
    hash_before, events_before = draft_release.content_hash, AuditEvent.objects.count()
    response = admin_as(author).post(url, data | _stage_rows(*rows, initial=len(rows)))
    assert response.status_code == 200
    assert "FR is not among the release&#x27;s markets (DE, US)" in response.content.decode()
    draft_release.refresh_from_db()
    assert draft_release.content_hash == hash_before and AuditEvent.objects.count() == events_before
    assert [s.markets for s in draft_release.ordered_stages] == [s.markets for s in stages]


def test_frozen_release_fields_are_read_only(author, program_manager, draft_release):
    advance_release(draft_release, S.IN_REVIEW, program_manager=program_manager)
    page = admin_as(author).get(reverse("admin:releases_release_change", args=[draft_release.pk])).content.decode()
    assert 'name="system_prompt"' not in page


def _buttons(user: Any, release: Release) -> set[str]:
    response = admin_as(user).get(reverse("admin:releases_release_change", args=[release.pk]))
    return {t.name for t in response.context["available_transitions"]}


def test_buttons_shown_only_when_legal_for_the_user(author, program_manager, oncall, auditor, draft_release):
    assert _buttons(author, draft_release) == {"submit"}
    assert _buttons(program_manager, draft_release) == {"cancel"}
    release = advance_release(draft_release, S.ROLLING_OUT, program_manager=program_manager)
    assert _buttons(program_manager, release) == {"promote", "pause", "rollback"}
    assert _buttons(oncall, release) == {"pause", "rollback"}
    assert _buttons(auditor, release) == set()
    page = admin_as(program_manager).get(reverse("admin:releases_release_change", args=[release.pk])).content
    assert b'value="Promote"' in page and b'value="Roll back"' in page


# (transition, starting state, persona, reason)
BUTTONS = [
    ("submit", S.DRAFT, "author", ""),
    ("request_changes", S.IN_REVIEW, "reviewer", "Cite the refund policy"),
    ("reject", S.IN_REVIEW, "reviewer", "Unsafe"),
    ("cancel", S.APPROVED, "program_manager", "Superseded"),
    ("start_rollout", S.APPROVED, "program_manager", ""),
    ("pause", S.ROLLING_OUT, "oncall", "CSAT alert"),
    ("rollback", S.ROLLING_OUT, "oncall", "Escalations doubled"),
    ("begin_verification", S.LAUNCHED, "program_manager", ""),
]


@pytest.mark.parametrize(("name", "state", "persona", "reason"), BUTTONS)
def test_each_button_runs_its_service(request, name, state, persona, reason, draft_release, program_manager):
    release = sign_open_checklists(advance_release(draft_release, state, program_manager=program_manager))
    actor = request.getfixturevalue(persona)
    response = admin_as(actor).post(
        reverse("admin:releases_release_transition", args=[release.pk, name]), {"reason": reason}
    )
    assert response.status_code == 302
    release.refresh_from_db()
    assert release.status != state
    assert AuditEvent.objects.filter(release_id=release.pk, action=f"release.{name}", actor=actor).exists()
    assert any("now" in message for message in _messages(response))


def test_promote_resume_and_complete_buttons(draft_release, program_manager, oncall):
    release = advance_release(draft_release, S.ROLLING_OUT, program_manager=program_manager)
    client = admin_as(program_manager)
    url = reverse("admin:releases_release_transition", args=[release.pk, "promote"])
    page = client.get(reverse("admin:releases_release_change", args=[release.pk])).content.decode()
    assert '<input type="hidden" name="from_stage" value="1">' in page
    response = client.post(url, {"reason": "", "from_stage": "1"})
    assert any("must hold" in m for m in _messages(response))
    client.post(url, {"reason": "Sample reached", "override": "on", "from_stage": "1"})
    release.refresh_from_db()
    assert release.current_stage.position == 2
    # A second click from the stale page (still showing stage 1) does not promote again.
    stale = client.post(url, {"reason": "Sample reached", "override": "on", "from_stage": "1"})
    assert any("no longer at stage 1" in m for m in _messages(stale))
    release.refresh_from_db()
    assert release.current_stage.position == 2
    client.post(reverse("admin:releases_release_transition", args=[release.pk, "pause"]), {"reason": "look"})
    client.post(reverse("admin:releases_release_transition", args=[release.pk, "resume"]), {"reason": ""})
    release.refresh_from_db()
    assert release.status == S.ROLLING_OUT
    release = advance_release(release, S.VERIFIED, program_manager=program_manager)
    assert release.status == S.VERIFIED


def test_refused_button_shows_message_and_writes_nothing(author, program_manager, draft_release):
    release = advance_release(draft_release, S.IN_REVIEW, program_manager=program_manager)
    count = AuditEvent.objects.count()
    response = admin_as(author).post(reverse("admin:releases_release_transition", args=[release.pk, "submit"]))
    assert response.status_code == 302
    assert any("refused" in m for m in _messages(response))
    assert AuditEvent.objects.count() == count


def test_history_cannot_be_reverted(superuser, author, draft_release):
    services.release_update(release=draft_release, actor=author, title="Second title")
    first = draft_release.history.order_by("history_id").first()
    url = reverse("admin:releases_release_simple_history", args=[draft_release.pk, first.history_id])
    client = admin_as(superuser)
    page = client.get(url)
    assert page.status_code == 200 and b"Revert" not in page.content
    client.post(url, {"title": first.title})
    draft_release.refresh_from_db()
    assert draft_release.title == "Second title"


def test_audit_events_read_only_even_for_superuser(superuser, draft_release):
    event = AuditEvent.objects.first()
    client = admin_as(superuser)
    assert client.get(reverse("admin:core_auditevent_add")).status_code == 403
    assert client.get(reverse("admin:core_auditevent_delete", args=[event.pk])).status_code == 403


def test_changelist_query_count(author, program_manager, solution, django_assert_max_num_queries):
    for _ in range(10):
        make_release(author=author, solution=solution)
    client = admin_as(program_manager)
    client.get(reverse("admin:releases_release_changelist"))
    with django_assert_max_num_queries(15):
        assert client.get(reverse("admin:releases_release_changelist")).status_code == 200


def test_ownership_form_reassigns_through_the_service(draft_release, author, second_author, program_manager):
    change = reverse("admin:releases_release_change", args=[draft_release.pk])
    url = reverse("admin:releases_release_reassign", args=[draft_release.pk])
    page = admin_as(program_manager).get(change).content.decode()
    assert 'id="reassign-form"' in page and 'name="author"' in page
    author_page = admin_as(author).get(change).content.decode()
    assert 'id="reassign-form"' in author_page and 'name="author"' not in author_page
    assert 'id="reassign-form"' not in admin_as(second_author).get(change).content.decode()

    response = admin_as(program_manager).post(url, {"author": author.pk, "co_authors": [second_author.pk]})
    assert any("Ownership saved" in m for m in _messages(response))
    assert list(draft_release.co_authors.all()) == [second_author]
    assert AuditEvent.objects.filter(action="release.reassigned", actor=program_manager).count() == 1

    refused = admin_as(second_author).post(url, {"co_authors": []})
    assert any("Reassign refused" in m for m in _messages(refused))
    assert list(draft_release.co_authors.all()) == [second_author]


def test_authoring_errors_name_the_line_and_write_nothing(author, solution):
    page = admin_as(author).get(reverse("admin:releases_release_add")).content.decode()
    # The add form shows no empty lifecycle fields and offers markets as checkboxes.
    assert "Lifecycle" not in page and 'name="content_hash"' not in page
    assert 'type="checkbox" name="markets" value="US"' in page
    data = {
        "solution": solution.pk,
        "title": "Typos",
        "risk_level": "low",
        "resolution_flow": "ask\nanswer!\n",
        "model_parameters": "temperature = 0.1\nmax_tokens 400",
        "tools": "order_lookup",
        "markets": ["US"],
        "verification_window": "7 00:00:00",
        "stages-TOTAL_FORMS": "0",
        "stages-INITIAL_FORMS": "0",
        "stages-MIN_NUM_FORMS": "0",
        "stages-MAX_NUM_FORMS": "1000",
    }
    response = admin_as(author).post(reverse("admin:releases_release_add"), data)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Line 2 (&#x27;answer!&#x27;)" in body
    assert "Line 2 (&#x27;max_tokens 400&#x27;): write it as &#x27;key = value&#x27;." in body
    assert not Release.objects.exists()


def test_a_frozen_release_shows_readable_content(author, reviewer, program_manager):
    release = advance_release(make_release(author=author), S.APPROVED, program_manager=program_manager)
    page = admin_as(reviewer).get(reverse("admin:releases_release_change", args=[release.pk])).content.decode()
    assert '<pre class="content-readable">identify_order\ncheck_eligibility' in page
    assert '<pre class="content-readable">temperature = 0.2</pre>' in page
    assert "order_lookup, refund_policy" in page
    assert "{&quot;steps&quot;" not in page and "{&#x27;steps&#x27;" not in page


def _queries(client: Any, url: str) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.get(url)  # warm the per-user caches, so both counts measure the page alone
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_release_list_and_api_cost_the_same_queries_for_1_and_25_solutions(author, program_manager, solution):
    from tests.factories import SolutionFactory

    make_release(author=author, solution=solution)
    client = admin_as(program_manager)
    pages = [reverse("admin:releases_release_changelist"), "/api/v1/releases/"]
    before = [_queries(client, url) for url in pages]
    for index in range(24):
        make_release(author=author, solution=SolutionFactory(key=f"solution-{index}", name=f"Solution {index}"))
    assert [_queries(client, url) for url in pages] == before


def test_the_solution_filter_offers_recent_solutions_and_filters_by_any(author, program_manager, solution):
    from releases.admin import SolutionFilter
    from tests.factories import SolutionFactory

    oldest = make_release(author=author, solution=solution)
    for index in range(SolutionFilter.OFFERED + 2):
        make_release(author=author, solution=SolutionFactory(key=f"solution-{index}", name=f"Solution {index}"))
    client = admin_as(program_manager)
    url = reverse("admin:releases_release_changelist")
    page = client.get(url).content.decode()
    offered = set(re.findall(r"\?solution__id__exact=(\d+)", page))
    assert len(offered) == SolutionFilter.OFFERED and str(solution.pk) not in offered
    # The oldest solution is not offered, but its link still filters, and then it is offered as the choice made.
    filtered = client.get(url, {"solution__id__exact": solution.pk}).content.decode()
    assert reverse("admin:releases_release_change", args=[oldest.pk]) in filtered
    assert "1 release" in filtered and f"?solution__id__exact={solution.pk}" in filtered
    # Nonsense is refused like any bad admin filter: back to the list with an error flag, never a 500.
    refused = client.get(url, {"solution__id__exact": "refunds"})
    assert refused.status_code == 302 and refused.url.endswith("?e=1")
