"""The demo: believable contact-reason data and three opportunities at different stages, one measured."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from core.models import AuditEvent
from opportunities.models import ContactReasonVolume, Opportunity
from opportunities.selectors import calibration, gap_analysis

pytestmark = pytest.mark.django_db


def test_seed_opportunities_demo_creates_what_it_needs_and_is_idempotent():
    call_command("seed_opportunities_demo")
    statuses = sorted(Opportunity.objects.values_list("status", flat=True))
    assert statuses == ["in_delivery", "measured", "proposed"]
    measured = Opportunity.objects.get(status="measured")
    # The demo's estimate (+28 pp) is more than its outcome: the calibration says so.
    assert 0.1 < measured.realized_containment_lift < measured.expected_containment_lift
    assert measured.measurement["basis"] == "vs_control"
    assert calibration().summary.startswith("Estimates were")
    assert "optimistic" in calibration().summary
    gaps = gap_analysis().gaps
    assert len(gaps) == 10 and gaps[0].contact_reason == "order-tracking"
    assert AuditEvent.objects.filter(action="opportunity.measure").count() == 1
    rows = ContactReasonVolume.objects.count()
    call_command("seed_opportunities_demo")
    assert Opportunity.objects.count() == 3 and ContactReasonVolume.objects.count() == rows
