"""Notifications are never silently dropped: retries back off up to hours, a row that exhausts them is dead-lettered
(visible in the admin, on the incident and in the API), and a redrive (admin, API, command) delivers it once.
Time is moved with time_machine against a real local HTTP receiver that is down, then back."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from io import StringIO
from typing import Any
from unittest import mock

import pytest
import time_machine
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent
from monitoring.choices import DeliveryStatus, IncidentEventKind, Severity
from monitoring.models import NotificationEndpoint, NotificationOutbox
from monitoring.services import guardrails_evaluate, notification_deliver, notification_redrive
from monitoring.services.notifications import backoff, retry_span
from monitoring.tasks import sweep_notifications
from tests.conftest import api_as
from tests.factories import UserFactory

from .conftest import ingest, make_guardrail, sample_row

pytestmark = pytest.mark.django_db


class _Receiver(BaseHTTPRequestHandler):
    up = False
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if not _Receiver.up:
            self.send_response(503)
            self.end_headers()
            return
        _Receiver.received.append({"body": json.loads(body), "delivery": self.headers["X-Rollgate-Delivery"]})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.up, _Receiver.received = False, []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/rollgate"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def outbox_row(rolling_release: Any, error_rate: Any, receiver: str) -> NotificationOutbox:
    NotificationEndpoint.objects.create(name="ops", channel="webhook", target=receiver)
    make_guardrail(rolling_release, error_rate, severity=Severity.SEV2)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    with mock.patch("monitoring.tasks.deliver_notification.delay"):  # the sweep below delivers
        guardrails_evaluate()
    return NotificationOutbox.objects.get()


def sweep_at(moment: datetime) -> int:
    """One beat of ``sweep_notifications`` at ``moment``, its deliveries run in place of a worker."""
    with (
        time_machine.travel(moment, tick=False),
        mock.patch(
            "monitoring.tasks.deliver_notification.delay",
            side_effect=lambda outbox_id: notification_deliver(outbox_id=outbox_id),
        ),
    ):
        return sweep_notifications()


def run_sweeps(start: datetime, span: timedelta, *, every: timedelta = timedelta(minutes=1)) -> datetime:
    """The every-minute beat from ``start`` for ``span``, jumping over minutes where nothing is due."""
    moment, end = start, start + span
    while moment <= end:
        sweep_at(moment)
        due = NotificationOutbox.objects.filter(status=DeliveryStatus.PENDING).order_by("next_attempt_at").first()
        if due is None:
            break
        moment = max(moment + every, due.next_attempt_at)
    return moment


def test_backoff_reaches_hours_and_the_schedule_covers_a_day():
    waits = [backoff(attempt) for attempt in range(1, 20)]
    assert waits[0] == timedelta(seconds=30)
    assert waits == sorted(waits) and max(waits) == timedelta(hours=6)
    default_attempts = NotificationOutbox._meta.get_field("max_attempts").default
    assert retry_span(default_attempts) >= timedelta(hours=24)


def test_receiver_down_sixteen_minutes_still_gets_the_notification(outbox_row):
    """The attack: with the receiver down ~16 minutes, rows reached `failed` after 6 attempts and were never sent."""
    start = timezone.now()
    run_sweeps(start, timedelta(minutes=17))
    outbox_row.refresh_from_db()
    assert outbox_row.status == DeliveryStatus.PENDING and outbox_row.attempts >= 6
    assert _Receiver.received == []

    _Receiver.up = True  # the receiver is back; the beat goes on
    run_sweeps(start + timedelta(minutes=17), timedelta(hours=3))
    outbox_row.refresh_from_db()
    assert outbox_row.status == DeliveryStatus.SENT
    assert [r["delivery"] for r in _Receiver.received] == [str(outbox_row.pk)]


def test_exhausted_retries_are_dead_lettered_shown_and_redriven_once(
    outbox_row, program_manager, auditor, django_capture_on_commit_callbacks
):
    start = timezone.now()
    run_sweeps(start, timedelta(days=3))
    outbox_row.refresh_from_db()
    # Dead-lettered, not dropped: after the whole schedule, with the last error and the time it died.
    assert outbox_row.status == DeliveryStatus.DEAD
    assert outbox_row.attempts == outbox_row.max_attempts
    assert outbox_row.dead_at - start >= timedelta(hours=24)
    assert "503" in outbox_row.last_error
    incident = outbox_row.incident
    last_failure = incident.events.filter(kind=IncidentEventKind.NOTIFICATION_FAILED).last()
    assert "dead-lettered" in last_failure.message and last_failure.data["dead_lettered"] is True
    assert sweep_at(start + timedelta(days=4)) == 0  # the sweep leaves dead letters alone

    # Visible: counted on the incident, listed by status, readable by auditors.
    detail = api_as(auditor).get(f"/api/v1/incidents/{incident.pk}/")
    assert detail.status_code == 200 and detail.json()["notifications_dead"] == 1
    listed = api_as(auditor).get("/api/v1/notifications/", {"status": "dead"})
    assert listed.status_code == 200
    assert [row["id"] for row in listed.json()["results"]] == [outbox_row.pk]
    assert api_as(auditor).get("/api/v1/notifications/", {"status": "sent"}).json()["results"] == []

    # Redriven through the API once the receiver is back: delivered exactly once, audited.
    _Receiver.up = True
    with (
        mock.patch(
            "monitoring.tasks.deliver_notification.delay",
            side_effect=lambda outbox_id: notification_deliver(outbox_id=outbox_id),
        ),
        django_capture_on_commit_callbacks(execute=True),  # runs the enqueue while the worker stand-in is patched
    ):
        response = api_as(program_manager).post(
            "/api/v1/notifications/redrive/", {"incident": incident.pk}, format="json"
        )
        again = api_as(program_manager).post("/api/v1/notifications/redrive/", {"all": True}, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == {"redriven": [outbox_row.pk]}
    assert again.json() == {"redriven": []}  # sent rows are not dead: nothing to do, nothing sent twice
    outbox_row.refresh_from_db()
    assert (outbox_row.status, outbox_row.redrive_count, outbox_row.dead_at) == (DeliveryStatus.SENT, 1, None)
    assert [r["delivery"] for r in _Receiver.received] == [str(outbox_row.pk)]
    event = AuditEvent.objects.get(action="notification.redriven")
    assert (event.actor, event.object_id, event.from_state, event.to_state) == (
        program_manager,
        str(outbox_row.pk),
        DeliveryStatus.DEAD,
        DeliveryStatus.PENDING,
    )
    assert api_as(auditor).get(f"/api/v1/incidents/{incident.pk}/").json()["notifications_dead"] == 0


def _kill(row: NotificationOutbox) -> None:
    NotificationOutbox.objects.filter(pk=row.pk).update(
        status=DeliveryStatus.DEAD, attempts=row.max_attempts, dead_at=timezone.now(), last_error="HTTPError: 503"
    )


@pytest.mark.parametrize(
    ("role", "status"),
    [("Program managers", 200), ("On-call", 200), ("Auditors", 403), ("Authors", 403), ("Reviewers", 403)],
)
def test_who_may_redrive(outbox_row, role, status):
    _kill(outbox_row)
    user = UserFactory(username="someone", groups=[role])
    with mock.patch("monitoring.tasks.deliver_notification.delay"):
        response = api_as(user).post("/api/v1/notifications/redrive/", {"ids": [outbox_row.pk]}, format="json")
    assert response.status_code == status, response.content
    outbox_row.refresh_from_db()
    assert outbox_row.status == (DeliveryStatus.PENDING if status == 200 else DeliveryStatus.DEAD)


def test_outsiders_do_not_see_deliveries_and_bad_redrive_bodies_are_400(outbox_row, program_manager):
    outsider = UserFactory(username="nobody")
    assert api_as(outsider).get("/api/v1/notifications/").status_code == 403
    assert api_as(outsider).post("/api/v1/notifications/redrive/", {"all": True}, format="json").status_code == 403
    client = api_as(program_manager)
    for body in ({}, {"all": True, "ids": [1]}, {"ids": "x"}, {"incident": 999_999}):
        response = client.post("/api/v1/notifications/redrive/", body, format="json")
        assert response.status_code == 400, (body, response.content)


def test_redrive_touches_only_dead_letters_and_enqueues_after_commit(outbox_row):
    incident = outbox_row.incident
    in_flight = NotificationOutbox.objects.create(
        incident=incident,
        event=outbox_row.event,
        channel="email",
        target="oncall@example.com",
        payload=outbox_row.payload,
        next_attempt_at=timezone.now() + timedelta(hours=1),
        created_at=timezone.now(),
        attempts=3,
    )
    _kill(outbox_row)
    with mock.patch("monitoring.tasks.deliver_notification.delay") as delay:
        assert notification_redrive(actor=None, incident=incident) == [outbox_row.pk]
    in_flight.refresh_from_db()
    assert (in_flight.status, in_flight.attempts) == (DeliveryStatus.PENDING, 3)  # not dead: untouched
    assert delay.call_count == 0  # enqueued only after commit (the test's transaction never commits)
    outbox_row.refresh_from_db()
    assert (outbox_row.status, outbox_row.attempts) == (DeliveryStatus.PENDING, 0)  # a fresh schedule


def test_the_command_lists_then_redrives(outbox_row, django_capture_on_commit_callbacks):
    _kill(outbox_row)
    out = StringIO()
    call_command("redrive_notifications", stdout=out)
    assert "1 dead-lettered" in out.getvalue() and f"#{outbox_row.pk}" in out.getvalue()
    outbox_row.refresh_from_db()
    assert outbox_row.status == DeliveryStatus.DEAD  # listing does not act

    out = StringIO()
    with (
        mock.patch("monitoring.tasks.deliver_notification.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        call_command("redrive_notifications", "--incident", str(outbox_row.incident_id), stdout=out)
    assert f"redriven=1 ids=[{outbox_row.pk}]" in out.getvalue()
    delay.assert_called_once_with(outbox_row.pk)
    assert AuditEvent.objects.get(action="notification.redriven").actor_label == "system"

    _kill(outbox_row)
    out = StringIO()
    with mock.patch("monitoring.tasks.deliver_notification.delay"):
        call_command("redrive_notifications", "--all", stdout=out)
    assert "redriven=1" in out.getvalue()


def test_admin_shows_dead_letters_and_redrives_them(outbox_row, program_manager, admin_client_for):
    _kill(outbox_row)
    client = admin_client_for(program_manager)
    changelist = reverse("admin:monitoring_notificationoutbox_changelist")
    page = client.get(changelist, {"status__exact": "dead"})
    assert page.status_code == 200
    assert "Dead-lettered" in page.content.decode() and "redrive_selected" in page.content.decode()
    with mock.patch("monitoring.tasks.deliver_notification.delay"):
        response = client.post(
            changelist, {"action": "redrive_selected", "_selected_action": [outbox_row.pk]}, follow=True
        )
    assert response.status_code == 200
    assert "Redriven: 1 notification(s)" in response.content.decode()
    outbox_row.refresh_from_db()
    assert outbox_row.status == DeliveryStatus.PENDING and outbox_row.redrive_count == 1
    assert AuditEvent.objects.filter(action="notification.redriven", actor=program_manager).count() == 1


def test_admin_offers_no_redrive_to_auditors(outbox_row, auditor, admin_client_for):
    _kill(outbox_row)
    client = admin_client_for(auditor)
    changelist = reverse("admin:monitoring_notificationoutbox_changelist")
    page = client.get(changelist)
    assert page.status_code == 200 and "redrive_selected" not in page.content.decode()
    client.post(changelist, {"action": "redrive_selected", "_selected_action": [outbox_row.pk]})
    outbox_row.refresh_from_db()
    assert outbox_row.status == DeliveryStatus.DEAD


def test_rows_given_up_before_dead_lettering_existed_can_be_redriven(outbox_row):
    NotificationOutbox.objects.filter(pk=outbox_row.pk).update(status=DeliveryStatus.FAILED, attempts=6)
    with mock.patch("monitoring.tasks.deliver_notification.delay"):
        assert notification_redrive(actor=None, all_dead=True) == [outbox_row.pk]


def test_the_task_leaves_long_waits_to_the_sweep(outbox_row):
    from monitoring import tasks

    # Seven failures behind it: the next wait is 32 minutes, beyond the task's own retry horizon.
    NotificationOutbox.objects.filter(pk=outbox_row.pk).update(attempts=7)
    with mock.patch.object(tasks.deliver_notification, "retry", side_effect=RuntimeError("retry")) as retry:
        assert tasks.deliver_notification.run(outbox_row.pk) is False
    assert retry.call_count == 0
    outbox_row.refresh_from_db()
    assert (outbox_row.status, outbox_row.attempts) == (DeliveryStatus.PENDING, 8)
    assert outbox_row.next_attempt_at - timezone.now() > timedelta(minutes=60)
