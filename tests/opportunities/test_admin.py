"""Every opportunities admin page, loaded by the personas that use it; the buttons call the services; the
gap-analysis and backlog pages take the same number of queries for 2 or 12 rows."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from core.models import AuditEvent
from opportunities.models import Opportunity
from tests.conftest import admin_as

from .conftest import propose, store, volume_row, weeks_ago

pytestmark = pytest.mark.django_db
GAPS = reverse("admin:opportunities_gapanalysis_changelist")
BACKLOG = reverse("admin:opportunities_opportunity_changelist")


def test_gap_analysis_page_ranks_filters_and_links_to_a_new_opportunity(program_manager, auditor):
    store(
        volume_row(reason="refund-status", start=weeks_ago(1)),
        volume_row(reason="payout-delay", audience="sellers", market="DE", start=weeks_ago(1), handed=900),
    )
    index = admin_as(auditor).get(reverse("admin:index")).content.decode()
    assert GAPS in index  # listed under Opportunities on the admin index
    page = admin_as(program_manager).get(GAPS)
    assert page.status_code == 200
    html = page.content.decode()
    assert html.index('data-reason="payout-delay"') < html.index('data-reason="refund-status"')
    assert "<svg" in html and "gap-chart" in html
    assert "Create opportunity" in html
    assert "Create opportunity" not in admin_as(auditor).get(GAPS).content.decode()
    filtered = admin_as(program_manager).get(GAPS, {"audience": "buyers"}).content.decode()
    assert 'data-reason="payout-delay"' not in filtered and 'class="gap-row" data-reason="refund-status"' in filtered
    bad = admin_as(program_manager).get(GAPS, {"market": "<script>", "audience": "aliens"})
    assert bad.status_code == 200 and "Unknown market" in bad.content.decode()
    add = admin_as(program_manager).get(
        reverse("admin:opportunities_opportunity_add"), {"contact_reasons": "payout-delay"}
    )
    assert 'value="payout-delay"' in add.content.decode() and "Automate payout delay" in add.content.decode()


def test_create_through_the_admin_then_press_the_lifecycle_buttons(program_manager, solution):
    store(volume_row(start=weeks_ago(1)))
    client = admin_as(program_manager)
    form = {
        "title": "Refund status",
        "contact_reasons_text": "refund-status",
        "markets_text": "US, DE",
        "audience": "buyers",
        "hypothesis": "Lookup knows.",
        "expected_containment_lift": "0.2",
        "effort_weeks": "4",
        "confidence": "0.8",
        "solution": str(solution.pk),
    }
    response = client.post(reverse("admin:opportunities_opportunity_add"), form)
    assert response.status_code == 302, response.content.decode()[:2000]
    opportunity = Opportunity.objects.get()
    assert (opportunity.markets, opportunity.owner_id) == (["US", "DE"], program_manager.pk)
    assert AuditEvent.objects.filter(action="opportunity.created").count() == 1
    change = reverse("admin:opportunities_opportunity_change", args=[opportunity.pk])
    html = client.get(change).content.decode()
    # one week of 1,000 conversations is 250 a week over the last 4 weeks
    assert "R × I × C ÷ E = 250 × 0.0333 × 0.8 ÷ 4 = 1.67" in html and 'value="Accept"' in html, html[
        html.find("opportunity-panel") :
    ][:1500]
    transition = reverse("admin:opportunities_opportunity_transition", args=[opportunity.pk, "accept"])
    assert client.get(transition).status_code == 302  # a followed link never acts
    assert Opportunity.objects.get().status == "proposed"
    client.post(transition)
    assert Opportunity.objects.get().status == "accepted"
    refused = client.post(
        reverse("admin:opportunities_opportunity_transition", args=[opportunity.pk, "deliver"]), follow=True
    )
    assert "Mark delivered refused" in refused.content.decode()
    drop = reverse("admin:opportunities_opportunity_transition", args=[opportunity.pk, "drop"])
    assert "reason" in client.post(drop, follow=True).content.decode().lower()
    assert Opportunity.objects.get().status == "accepted"
    # Showing a frozen (accepted) opportunity must not freeze the fields of the next new one.
    client.post(reverse("admin:opportunities_opportunity_add"), {**form, "contact_reasons_text": "order-tracking"})
    assert Opportunity.objects.filter(contact_reasons=["order-tracking"]).count() == 1


def test_bad_admin_input_is_a_message_not_a_500(program_manager):
    response = admin_as(program_manager).post(
        reverse("admin:opportunities_opportunity_add"),
        {
            "title": "x",
            "contact_reasons_text": "Not A Slug",
            "hypothesis": "h",
            "expected_containment_lift": "7",
            "effort_weeks": "1",
            "confidence": "0.5",
        },
    )
    assert response.status_code == 200
    assert "errornote" in response.content.decode()
    assert Opportunity.objects.count() == 0


def test_every_page_loads_for_readers(program_manager, auditor, author):
    opportunity = propose(program_manager)
    for user in (program_manager, auditor, author):
        client = admin_as(user)
        for url in (
            GAPS,
            BACKLOG,
            reverse("admin:opportunities_opportunity_change", args=[opportunity.pk]),
            reverse("admin:opportunities_opportunity_history", args=[opportunity.pk]),
            reverse("admin:opportunities_opportunity_calibration"),
            reverse("admin:opportunities_contactreasonvolume_changelist"),
            reverse("admin:opportunities_scoringweights_changelist"),
            reverse("admin:opportunities_scoringweights_change", args=[1]),
        ):
            assert client.get(url).status_code == 200, (user, url)
    assert (
        'value="Accept"'
        not in admin_as(auditor)
        .get(reverse("admin:opportunities_opportunity_change", args=[opportunity.pk]))
        .content.decode()
    )


def test_weights_change_through_the_service(program_manager):
    response = admin_as(program_manager).post(
        reverse("admin:opportunities_scoringweights_change", args=[1]),
        {"reach": "1", "impact": "1", "confidence": "2", "effort": "1", "reason": "Sure bets"},
    )
    assert response.status_code == 302
    assert AuditEvent.objects.get(action="opportunity.scoring_weights_changed").reason == "Sure bets"
    assert "Confidence^2 ÷" in admin_as(program_manager).get(BACKLOG).content.decode()


def _queries(client, url):
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_gap_and_backlog_pages_take_constant_queries(program_manager, solution):
    client = admin_as(program_manager)
    store(*(volume_row(reason=f"reason-{i}", start=weeks_ago(w)) for i in range(2) for w in (1, 5)))
    for i in range(2):
        propose(program_manager, title=f"opp {i}", contact_reasons=[f"reason-{i}"], solution=solution)
    few = (_queries(client, GAPS), _queries(client, BACKLOG))
    store(
        *(
            volume_row(reason=f"reason-{i}", market=m, start=weeks_ago(w))
            for i in range(12)
            for w in (1, 2, 6)
            for m in ("US", "DE")
        )
    )
    for i in range(2, 12):
        propose(program_manager, title=f"opp {i}", contact_reasons=[f"reason-{i}", "reason-0"], solution=solution)
    many = (_queries(client, GAPS), _queries(client, BACKLOG))
    assert many == few
