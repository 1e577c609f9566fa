"""Every monitoring admin page, loaded by every persona that uses the admin. These tests only read, so the world
they read (personas, a live release, a failing guardrail, its incident, an endpoint and its outbox row) is built
once for the module, in a transaction rolled back after its last test."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from django.db import transaction
from django.urls import reverse

from core.roles import AUDITORS, AUTHORS, ON_CALL, PROGRAM_MANAGERS
from monitoring.choices import GuardrailScope
from monitoring.models import (
    Evaluation,
    Guardrail,
    Incident,
    MetricDefinition,
    MetricSample,
    NotificationEndpoint,
    NotificationOutbox,
)
from monitoring.services import guardrails_evaluate
from tests.conftest import admin_as
from tests.factories import SolutionFactory, UserFactory, make_release

from .conftest import ingest, make_guardrail, put_live, sample_row

pytestmark = pytest.mark.django_db


@dataclass
class World:
    personas: dict[str, Any]
    incident: Incident


@pytest.fixture(scope="module")
def world(django_db_setup: Any, django_db_blocker: Any) -> Any:
    with django_db_blocker.unblock(), transaction.atomic():
        Guardrail.objects.filter(scope=GuardrailScope.RISK_LEVEL).delete()
        personas = {
            "superuser": UserFactory(username="pages.root", is_superuser=True),
            "program_manager": UserFactory(username="pages.pm", groups=[PROGRAM_MANAGERS]),
            "oncall": UserFactory(username="pages.oncall", groups=[ON_CALL]),
            "auditor": UserFactory(username="pages.auditor", groups=[AUDITORS]),
        }
        author = UserFactory(username="pages.author", groups=[AUTHORS])
        release = put_live(
            make_release(author=author, solution=SolutionFactory()), program_manager=personas["program_manager"]
        )
        NotificationEndpoint.objects.create(name="ops hook", channel="webhook", target="http://127.0.0.1:9/hook")
        make_guardrail(release, MetricDefinition.objects.get(key="error_rate"))
        ingest(sample_row(release, "error_rate", numerator=300, denominator=1000))
        guardrails_evaluate()
        yield World(personas=personas, incident=Incident.objects.get())
        transaction.set_rollback(True)


def _pages(incident):
    guardrail = incident.guardrail
    pages = [reverse("admin:app_list", args=["monitoring"])]
    for model, obj in [
        (MetricDefinition, MetricDefinition.objects.first()),
        (MetricSample, MetricSample.objects.first()),
        (Guardrail, guardrail),
        (Evaluation, Evaluation.objects.first()),
        (Incident, incident),
        (NotificationEndpoint, NotificationEndpoint.objects.first()),
        (NotificationOutbox, NotificationOutbox.objects.first()),
    ]:
        name = model._meta.model_name
        pages.append(reverse(f"admin:monitoring_{name}_changelist"))
        pages.append(reverse(f"admin:monitoring_{name}_change", args=[obj.pk]))
    for name in ("metricdefinition", "guardrail", "incident", "notificationendpoint"):
        obj = {"metricdefinition": MetricDefinition.objects.first(), "guardrail": guardrail, "incident": incident}.get(
            name, NotificationEndpoint.objects.first()
        )
        pages.append(reverse(f"admin:monitoring_{name}_history", args=[obj.pk]))
    pages.append(reverse("admin:monitoring_guardrail_add"))
    pages.append(reverse("admin:monitoring_notificationendpoint_add"))
    changelist = reverse("admin:monitoring_incident_changelist")
    pages += [
        changelist + "?status__exact=triggered",
        changelist + "?unacknowledged=yes",
        changelist + "?unacknowledged=no",
        changelist + "?severity__exact=sev3",
        changelist + f"?assignee__id__exact={incident.assignee_id or 0}",
        changelist + "?q=error",
    ]
    return pages


@pytest.mark.parametrize("persona", ["superuser", "program_manager", "oncall", "auditor"])
def test_every_monitoring_admin_page_loads(world, persona):
    client = admin_as(world.personas[persona])
    for url in _pages(world.incident):
        response = client.get(url)
        expected = {200} if persona == "superuser" else {200, 403}
        assert response.status_code in expected, (persona, url, response.status_code)


def test_people_read_what_their_role_lets_them(world):
    """Not every page is a 200 for everyone: the auditor reads incidents, endpoints and their history; on-call
    may not open where pages go."""
    incident_page = reverse("admin:monitoring_incident_change", args=[world.incident.pk])
    endpoint = NotificationEndpoint.objects.get()
    endpoint_history = reverse("admin:monitoring_notificationendpoint_history", args=[endpoint.pk])
    auditor, oncall = admin_as(world.personas["auditor"]), admin_as(world.personas["oncall"])
    assert auditor.get(incident_page).status_code == 200
    assert auditor.get(endpoint_history).status_code == 200
    assert oncall.get(reverse("admin:monitoring_notificationendpoint_changelist")).status_code == 403


def test_changelists_do_not_grow_queries_with_rows(world, django_assert_max_num_queries):
    client = admin_as(world.personas["superuser"])
    for name in ("incident", "evaluation", "metricsample", "guardrail", "notificationoutbox"):
        with django_assert_max_num_queries(15):
            assert client.get(reverse(f"admin:monitoring_{name}_changelist")).status_code == 200
