from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.conf import settings
from django.utils import timezone

from config.celery import app
from core.roles import REVIEWERS
from governance import tasks
from governance.models import Approval
from governance.services import approval_record

pytestmark = pytest.mark.django_db


def test_beat_schedule_names_registered_tasks():
    app.loader.import_default_modules()
    for key in ("governance-expire-approvals", "governance-escalate-overdue-retro-reviews"):
        assert settings.CELERY_BEAT_SCHEDULE[key]["task"] in app.tasks


def test_expire_task_dismisses_what_is_past_its_validity(high_release, reviewer):
    approval = approval_record(
        release=high_release, approver=reviewer, group=REVIEWERS, content_hash=high_release.content_hash
    )
    assert tasks.expire_approvals() == 0
    with time_machine.travel(timezone.now() + timedelta(days=15), tick=False):
        assert tasks.expire_approvals() == 1
    approval.refresh_from_db()
    assert approval.dismissed_at is not None
    assert Approval.objects.filter(dismissed_at__isnull=True).count() == 0


def test_escalation_task_runs_with_nothing_overdue():
    assert tasks.escalate_overdue_retro_reviews() == 0
