from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.db import transaction
from django.test import Client
from django.urls import reverse

from demo.management.commands.seed_demo import RELEASES
from governance.models import Checklist, ChecklistItem
from releases.models import Release

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module", autouse=True)
def seeded_demo(django_db_setup, django_db_blocker):
    """The demo, seeded once for the module inside a transaction rolled back at its end; each test runs in a
    savepoint inside it, so what one test changes the next never sees."""
    with django_db_blocker.unblock(), transaction.atomic():
        call_command("seed_demo", stdout=StringIO())
        yield
        transaction.set_rollback(True)


APPROVED_TITLE = "Clarify reserve holds for new sellers"


def test_seed_demo_leaves_each_release_in_its_state_and_is_idempotent():
    expected = {title: status for _key, title, _risk, status, _extra in RELEASES}
    assert dict(Release.objects.values_list("title", "status")) == expected

    out = StringIO()
    call_command("seed_demo", stdout=out)
    assert "already exist" in out.getvalue()
    assert Release.objects.count() == len(RELEASES)


def test_pm_can_start_the_rollout_of_the_seeded_approved_release():
    release = Release.objects.get(title=APPROVED_TITLE)
    assert (release.status, release.author.username) == ("approved", "author2")
    rollout = Checklist.objects.current().get(release=release, gate="rollout")
    assert rollout.status == "complete"
    signers = set(ChecklistItem.objects.filter(checklist=rollout).values_list("signed_by__username", flat=True))
    assert signers and signers <= {"reviewer", "reviewer2", "pm", "pm2", "oncall"}

    client = Client()
    client.force_login(User.objects.get(username="pm"))
    response = client.post(
        reverse("admin:releases_release_transition", args=[release.pk, "start_rollout"]), {"reason": ""}
    )
    assert response.status_code == 302
    messages = [str(m) for m in get_messages(response.wsgi_request)]
    assert not any("refused" in m for m in messages), messages
    release.refresh_from_db()
    assert release.status == "rolling_out"
    assert release.history.first().history_user.username == "pm"


def test_the_demo_tells_a_story_on_call_and_program_managers_can_read():
    from monitoring.cockpit import release_health
    from monitoring.models import Incident, NotificationOutbox
    from opportunities.models import Opportunity

    canary = Release.objects.get(status="rolling_out")
    open_incidents = list(Incident.objects.open().select_related("guardrail__metric"))
    assert len(open_incidents) == 1, [(i.title, i.kind, i.opened_at) for i in open_incidents]
    incident = open_incidents[0]
    assert (incident.release, incident.market, incident.guardrail.metric.key) == (canary, "US", "escalation_rate")
    assert NotificationOutbox.objects.filter(incident=incident, target="oncall@demo.test").exists()

    def worst(title: str) -> str:
        return release_health(release=Release.objects.get(title=title)).worst

    assert worst("Offer order lookup before handoff") == "fail"
    assert worst("Explain the 30-day refund window first") == "pass"
    assert worst("Knowledge base refresh for creator tiers") == "insufficient_data"
    health = release_health(release=canary)
    assert health.active_markets == ["US"] and len(health.charts) >= 2
    # Versions of one solution differ in content, as real versions do.
    hashes = list(Release.objects.values_list("content_hash", flat=True))
    assert len(set(hashes)) == len(hashes)
    # The backlog measured its realized impact on the verified release.
    assert Opportunity.objects.filter(status="measured", releases__status="verified").exists()
