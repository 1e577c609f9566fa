"""The Celery tasks called directly (worker steps), the beat schedule, and the evaluate_guardrails command."""

from __future__ import annotations

from unittest import mock

import pytest
from django.conf import settings
from django.core.management import call_command

from monitoring import tasks
from monitoring.models import Evaluation, Incident, NotificationEndpoint, NotificationOutbox

from .conftest import ingest, make_guardrail, sample_row

pytestmark = pytest.mark.django_db


def test_beat_schedules_every_monitoring_task_every_minute():
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert {
        "monitoring.evaluate_guardrails_cycle",
        "monitoring.rollout_automate",
        "monitoring.escalate_incidents",
        "monitoring.sweep_notifications",
    } <= scheduled


def test_tasks_are_late_acknowledged_with_time_limits():
    for task in (
        tasks.evaluate_guardrails_cycle,
        tasks.evaluate_releases,
        tasks.rollout_automate,
        tasks.escalate_incidents,
        tasks.deliver_notification,
        tasks.sweep_notifications,
    ):
        assert task.acks_late and task.reject_on_worker_lost
        assert task.time_limit and task.soft_time_limit


def test_cycle_fans_out_the_live_releases(rolling_release):
    with mock.patch.object(tasks.evaluate_releases, "delay") as delay:
        assert tasks.evaluate_guardrails_cycle.apply().get() == 1
    delay.assert_called_once_with([rolling_release.pk])


def test_evaluate_releases_task_runs_the_service(rolling_release, error_rate):
    make_guardrail(rolling_release, error_rate)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    assert tasks.evaluate_releases.apply(args=[[rolling_release.pk]]).get() == 2
    assert tasks.evaluate_releases.apply(args=[[rolling_release.pk]]).get() == 0  # redelivered: nothing new
    assert Incident.objects.count() == 1


def test_deliver_task_retries_a_failed_delivery_sooner_than_the_sweep(rolling_release, error_rate):
    NotificationEndpoint.objects.create(name="dead", channel="webhook", target="http://127.0.0.1:9/x")
    make_guardrail(rolling_release, error_rate)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    with mock.patch.object(tasks.deliver_notification, "delay"):
        tasks.evaluate_releases.apply(args=[[rolling_release.pk]])
    row = NotificationOutbox.objects.get()
    retrying = mock.patch.object(tasks.deliver_notification, "retry", side_effect=RuntimeError("retry"))
    with retrying as retry, pytest.raises(RuntimeError):
        tasks.deliver_notification.run(row.pk)
    assert retry.call_args.kwargs["countdown"] == 30


def test_evaluate_guardrails_command(rolling_release, error_rate, capsys):
    make_guardrail(rolling_release, error_rate)
    ingest(sample_row(rolling_release, "error_rate", numerator=300, denominator=1000))
    call_command("evaluate_guardrails", "--automate")
    out = capsys.readouterr().out
    assert "evaluations=2" in out and "opened=1" in out
    assert Evaluation.objects.count() == 2
