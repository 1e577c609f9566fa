"""The cockpit: the release health panel, the incident page as on-call reads it, the evaluations and incidents
lists' defaults, and the 'needs me now' home, with their query counts constant in releases, evaluations and
samples."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from monitoring.choices import IncidentStatus, Outcome
from monitoring.models import Evaluation, Incident, MetricSample
from monitoring.services import guardrails_evaluate
from releases.choices import ReleaseStatus
from releases.models import Release
from releases.services import StageSpec
from tests.conftest import admin_as
from tests.factories import make_release

from .conftest import ingest, make_guardrail, put_live, sample_row

pytestmark = pytest.mark.django_db


CANARY_US = (
    StageSpec(name="Canary", traffic_percent=5, markets=("US",), min_hold=timedelta(hours=1), min_sample_size=500),
    StageSpec(name="Half", traffic_percent=50, min_hold=timedelta(hours=2)),
    StageSpec(name="Full", traffic_percent=100, min_hold=timedelta(0)),
)


@pytest.fixture
def rolling_release(author, solution, program_manager, no_default_guardrails):
    # A US-only canary of a US + DE release, like the demo's.
    return put_live(make_release(author=author, solution=solution, stages=CANARY_US), program_manager=program_manager)


@pytest.fixture
def breaching(rolling_release, error_rate):
    make_guardrail(rolling_release, error_rate)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    guardrails_evaluate()
    return rolling_release


def _page(user: Any, url: str) -> str:
    response = admin_as(user).get(url)
    assert response.status_code == 200
    return response.content.decode()


def _queries(user: Any, url: str) -> int:
    client = admin_as(user)
    client.get(url)  # warm caches (content types, permissions) so both counts measure the page alone
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def _more_looks(release: Release, count: int) -> None:
    """``count`` more stored looks and samples of the release's guardrails: what weeks of evaluation leave behind.
    Written directly: they are immutable machine rows and the point is their number, not how they were judged."""
    template = Evaluation.objects.filter(release=release).first()
    assert template is not None
    looks, samples = [], []
    for index in range(1, count + 1):
        at = template.window_end - timedelta(minutes=index)
        looks.append(
            Evaluation(
                guardrail_id=template.guardrail_id,
                release=release,
                market=template.market,
                window_start=template.window_start,
                window_end=at,
                outcome=Outcome.PASS,
                observed=0.02,
                lower=0.01,
                upper=0.03,
                n=1000,
                evaluated_at=at,
                data_through=at,
            )
        )
        samples.append(
            MetricSample(
                release=release,
                metric_id=template.guardrail.metric_id,
                metric_version=1,
                market="US",
                source=f"bulk-{index}",
                window_start=at - timedelta(hours=1),
                window_end=at,
                numerator=10,
                denominator=1000,
                received_at=at,
            )
        )
    Evaluation.objects.bulk_create(looks)
    MetricSample.objects.bulk_create(samples)


def test_the_health_panel_tops_a_breaching_rollout(program_manager, breaching):
    page = _page(program_manager, reverse("admin:releases_release_change", args=[breaching.pk]))
    # First of the release's panels: above governance's (its policy and frozen checklists).
    assert page.index('id="health-panel"') < page.index("Approval policy")
    assert 'aria-current="step"' in page and "hold:" in page
    assert 'data-market="US" data-outcome="fail"' in page
    assert "30.0% [" in page and "vs ≤ 5.0%" in page  # observed against the threshold, in percent
    assert 'class="guardrail-chart"' in page and 'class="limit"' in page and 'class="band"' in page
    incident = Incident.objects.get()
    assert reverse("admin:monitoring_incident_change", args=[incident.pk]) in page
    # Markets outside the US-only canary are shown as not serving, not as data problems.
    assert "(no traffic)" in page


def test_no_health_panel_before_the_rollout(program_manager, draft_release):
    page = _page(program_manager, reverse("admin:releases_release_change", args=[draft_release.pk]))
    assert 'id="health-panel"' not in page


def test_health_panel_and_incident_page_queries_do_not_grow_with_looks_and_samples(program_manager, oncall, breaching):
    release_url = reverse("admin:releases_release_change", args=[breaching.pk])
    incident_url = reverse("admin:monitoring_incident_change", args=[Incident.objects.get().pk])
    before = (_queries(program_manager, release_url), _queries(oncall, incident_url))
    _more_looks(breaching, 50)
    after = (_queries(program_manager, release_url), _queries(oncall, incident_url))
    assert after == before
    assert '<figure class="guardrail-chart"' in _page(program_manager, release_url)


def test_the_incident_page_reads_like_on_call_expects(oncall, breaching):
    incident = Incident.objects.get()
    page = _page(oncall, reverse("admin:monitoring_incident_change", args=[incident.pk]))
    assert escape(f"Error rate above 5.0% in US — {breaching.solution.name} v{breaching.version}, stage") in page
    assert "Rule: <strong>≤ 5.0%</strong>" in page and "30.0% [" in page
    assert 'class="guardrail-chart"' in page
    assert "Nobody was paged" in page  # no endpoint exists in this test
    assert 'value="Pause release"' in page and 'value="Roll back release"' in page
    assert 'id="comment-form"' in page


def test_on_call_comments_and_pauses_the_release_from_the_incident(oncall, breaching):
    incident = Incident.objects.get()
    client = admin_as(oncall)
    client.post(reverse("admin:monitoring_incident_comment", args=[incident.pk]), {"message": "Looking at it"})
    assert incident.events.filter(kind="comment", message="Looking at it", actor=oncall).exists()
    url = reverse("admin:monitoring_incident_release_action", args=[incident.pk, "pause"])
    refused = client.post(url, {"reason": ""}, follow=True).content.decode()
    assert "Pause refused" in refused
    breaching.refresh_from_db()
    assert breaching.status == ReleaseStatus.ROLLING_OUT
    client.post(url, {"reason": "Error rate at 30% in the canary"})
    breaching.refresh_from_db()
    assert breaching.status == ReleaseStatus.PAUSED


def test_the_incident_list_shows_open_incidents_by_default(oncall, breaching):
    incident = Incident.objects.get()
    url = reverse("admin:monitoring_incident_changelist")
    assert escape(f"Error rate above 5.0% in US — {breaching.solution.name}") in _page(oncall, url)
    from monitoring import services

    services.incident_resolve(incident=incident, actor=oncall, resolution="fixed", note="Config fixed")
    assert f'href="{reverse("admin:monitoring_incident_change", args=[incident.pk])}' not in _page(oncall, url)
    page = _page(oncall, url + "?state=all")
    assert reverse("admin:monitoring_incident_change", args=[incident.pk]) in page


def test_the_evaluations_list_shows_the_stages_markets_by_default(program_manager, breaching):
    assert set(Evaluation.objects.values_list("market", flat=True)) == {"US", "DE"}
    url = reverse("admin:monitoring_evaluation_changelist")
    page = _page(program_manager, url)
    assert "1 evaluation" in page and 'class="verdict verdict-fail"' in page
    assert "2 evaluations" in _page(program_manager, url + "?markets=all")


def test_the_home_shows_each_role_its_work(program_manager, oncall, reviewer, breaching):
    home = reverse("admin:index")
    pm_page = _page(program_manager, home)
    assert 'id="home-rollouts"' in pm_page and f'data-release="{breaching.pk}" data-worst="fail"' in pm_page
    assert "blocked by" in pm_page and "failing: Error rate in US" in pm_page
    audit = pm_page[pm_page.index('id="home-audit"') :]
    assert "approved → rolling_out" in audit and f"release {breaching.pk}" in audit
    oncall_page = _page(oncall, home)
    incident = Incident.objects.get()
    assert f'data-incident="{incident.pk}"' in oncall_page and "1 unacknowledged" in oncall_page
    assert reverse("admin:monitoring_incident_triage", args=[incident.pk, "acknowledge"]) in oncall_page
    reviewer_page = _page(reviewer, home)
    assert 'id="home-approvals"' in reviewer_page and 'id="home-incidents"' not in reviewer_page


def test_the_home_costs_the_same_queries_for_1_and_50_releases(program_manager, oncall, breaching, author, solution):
    home = reverse("admin:index")
    before = (_queries(program_manager, home), _queries(oncall, home))
    _more_looks(breaching, 50)
    stage = breaching.current_stage
    # 49 more releases in rollout. Walking each through governance would take minutes; their status is set
    # directly because the home only reads it.
    for index in range(49):
        other = make_release(author=author, solution=solution, title=f"Variant {index}")
        Release.objects.filter(pk=other.pk).update(
            status=ReleaseStatus.ROLLING_OUT,
            current_stage=other.stages.order_by("position").first(),
            stage_started_at=timezone.now(),
        )
    assert stage is not None and Release.objects.filter(status=ReleaseStatus.ROLLING_OUT).count() == 50
    after = (_queries(program_manager, home), _queries(oncall, home))
    assert after == before
    assert Incident.objects.filter(status=IncidentStatus.TRIGGERED).count() == 1


def test_frozen_checklists_fold_away_on_a_rolling_out_release(program_manager, breaching):
    page = _page(program_manager, reverse("admin:releases_release_change", args=[breaching.pk]))
    passed = [c for c in breaching.checklists.all() if c.status == "passed"]
    assert passed
    for checklist in passed:
        # A passed gate's checklist is folded (its <details> not open): the live work stays near the top.
        assert re.search(rf'id="checklist-{checklist.pk}".*?<details class="checklist-details">', page, re.S)


def test_the_home_lists_the_worst_rollouts_with_the_totals_and_a_link_to_all(
    program_manager, oncall, breaching, author, solution, monkeypatch
):
    from monitoring import cockpit

    monkeypatch.setattr(cockpit, "HOME_LINES", 2)
    for index in range(3):
        other = make_release(author=author, solution=solution, title=f"Quiet variant {index}")
        Release.objects.filter(pk=other.pk).update(
            status=ReleaseStatus.ROLLING_OUT,
            current_stage=other.stages.order_by("position").first(),
            stage_started_at=timezone.now() - timedelta(days=1),
        )
    page = _page(program_manager, reverse("admin:index"))
    rollouts = page[page.index('id="home-rollouts"') :]
    lines = re.findall(r'data-release="(\d+)" data-worst="(\w+)"', rollouts)
    # Two lines shown out of four live releases, the failing one first; the totals count all four.
    assert len(lines) == 2 and lines[0] == (str(breaching.pk), "fail")
    assert 'Rollouts in flight <span class="count">4</span>' in rollouts
    # The quiet ones have no look and no hold left: ready; the breaching one is held and failing: blocked.
    assert "3 ready to promote" in rollouts and "1 blocked" in rollouts
    assert "All 4 live releases" in rollouts
    assert reverse("admin:releases_release_changelist") + "?status__in=" in rollouts
    link = re.search(r'href="([^"]*status__in=[^"]*)">All 4 live releases', rollouts)
    assert link is not None
    listed = _page(program_manager, link.group(1).replace("&amp;", "&"))
    for release in Release.objects.filter(status=ReleaseStatus.ROLLING_OUT):
        assert reverse("admin:releases_release_change", args=[release.pk]) in listed


def test_the_home_ranks_releases_by_their_latest_look_only(program_manager, breaching):
    from monitoring import cockpit

    assert [line.worst for line in cockpit.live_rollouts(now=timezone.now()).lines] == ["fail"]
    # A later passing look of the same key (the breach is over) makes the release pass, as its line says.
    failing = Evaluation.objects.get(release=breaching, market="US")
    Evaluation.objects.filter(pk=failing.pk).update(breached=True)
    later = Evaluation.objects.get(pk=failing.pk)
    later.pk = None
    later.samples, later.outcome, later.breached = later.samples + 1, Outcome.PASS, False
    later.evaluated_at = failing.evaluated_at + timedelta(minutes=1)
    later.save()
    rollouts = cockpit.live_rollouts(now=timezone.now())
    assert [(line.release.pk, line.worst, line.failing) for line in rollouts.lines] == [(breaching.pk, "pass", [])]
    assert rollouts.total == 1


def test_the_oncall_home_lists_the_first_incidents_and_counts_all(oncall, breaching, monkeypatch):
    from monitoring import cockpit

    monkeypatch.setattr(cockpit, "HOME_LINES", 1)
    incident = Incident.objects.get()
    second = Incident.objects.get(pk=incident.pk)
    second.pk, second.dedup_key, second.market = None, f"{incident.dedup_key}:second", "DE"
    second.status = IncidentStatus.ACKNOWLEDGED
    second.save()
    page = _page(oncall, reverse("admin:index"))
    incidents = page[page.index('id="home-incidents"') : page.index('id="home-rollouts"')]
    # The unacknowledged one comes first; the acknowledged one is counted and behind the link.
    assert re.findall(r'data-incident="(\d+)"', incidents) == [str(incident.pk)]
    assert 'Open incidents <span class="count">2</span>' in incidents and "1 unacknowledged" in incidents
    assert "All 2 open incidents" in incidents
