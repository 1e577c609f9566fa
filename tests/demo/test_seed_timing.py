"""Seeded in the first minute of an hour, the demo's story still ends in the past: a sample sent right after the
seed is newer than every sample of the story, so the next look judges it (make smoke once failed at 04:00:44)."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from monitoring.models import MetricSample


@pytest.mark.django_db
def test_seeded_samples_never_arrive_after_the_seed():
    with time_machine.travel(datetime(2026, 11, 27, 4, 0, 20, tzinfo=UTC), tick=False):
        call_command("seed_demo", stdout=StringIO())
        assert MetricSample.objects.exists()
        assert not MetricSample.objects.filter(received_at__gt=timezone.now()).exists()
