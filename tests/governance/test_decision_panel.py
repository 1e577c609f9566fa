"""The one decision panel: what blocks the gate, checklist progress, a single place to decide, and sign-offs
that return to the checklist."""

from __future__ import annotations

import re

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from governance.models import ChecklistItem, ChecklistItemState
from governance.selectors import release_governance_overview
from releases.choices import ReleaseStatus, RiskLevel
from tests.conftest import admin_as
from tests.governance.helpers import submitted

pytestmark = pytest.mark.django_db


def _pending_by_group(release):
    items = ChecklistItem.objects.filter(checklist__release=release, state=ChecklistItemState.PENDING)
    counts: dict[str, int] = {}
    for item in items.select_related("signer_group"):
        counts[item.signer_group.name] = counts.get(item.signer_group.name, 0) + 1
    return counts


def test_the_panel_names_what_blocks_the_gate_and_counts_progress(author, reviewer, program_manager):
    release = submitted(author=author, risk_level=RiskLevel.LOW)
    pending = _pending_by_group(release)
    total = ChecklistItem.objects.filter(checklist__release=release).count()
    overview = release_governance_overview(release=release, user=reviewer)
    expected = [f"{n} review-checklist item{'s' if n > 1 else ''} ({group})" for group, n in pending.items()]
    assert overview.blocked_by_text() == ", ".join([*expected, "1 approval (Program managers)"])
    page = admin_as(reviewer).get(reverse("admin:releases_release_change", args=[release.pk])).content.decode()
    assert "Blocked by:" in page and overview.blocked_by_text() in page
    assert f"Review checklist: 0/{total} signed" in page
    # The decision form comes after the checklist it depends on, and explains it (the low-risk policy asks a
    # program manager).
    assert 'id="approval-form"' not in page
    page = admin_as(program_manager).get(reverse("admin:releases_release_change", args=[release.pk])).content.decode()
    assert page.index('id="checklist"') < page.index('id="approval-form"')
    assert "only when every required approval is in and the review checklist is complete" in page


def test_one_place_to_request_changes_or_reject(author, program_manager):
    release = submitted(author=author, risk_level=RiskLevel.LOW)
    page = admin_as(program_manager).get(reverse("admin:releases_release_change", args=[release.pk])).content.decode()
    transitions = re.search(r'<div id="transition-buttons".*?</div>', page, re.S)
    lifecycle = transitions.group(0) if transitions else ""
    assert "request_changes" not in lifecycle and "/transition/reject/" not in lifecycle
    assert 'value="request_changes"' in page and 'value="reject"' in page  # in the decision form


def test_an_approval_says_what_still_blocks_the_release(author, program_manager):
    release = submitted(author=author, risk_level=RiskLevel.LOW)
    client = admin_as(program_manager)
    response = client.post(
        reverse("admin:governance_approve", args=[release.pk]),
        {"group": "Program managers", "decision": "approve", "content_hash": release.content_hash},
    )
    text = " ".join(str(m) for m in get_messages(response.wsgi_request))
    release.refresh_from_db()
    assert release.status == ReleaseStatus.IN_REVIEW
    assert "Still blocked by:" in text and "review-checklist item" in text
    page = client.get(reverse("admin:releases_release_change", args=[release.pk])).content.decode()
    assert "✔ approvals complete" in page and "the release moves once the checklist is complete" in page


def test_a_sign_off_returns_to_the_checklist(author, reviewer):
    release = submitted(author=author, risk_level=RiskLevel.LOW)
    item = ChecklistItem.objects.filter(checklist__release=release, signer_group__name="Reviewers").first()
    client = admin_as(reviewer)
    page = client.get(reverse("admin:releases_release_change", args=[release.pk])).content.decode()
    back = reverse("admin:releases_release_change", args=[release.pk]) + f"#checklist-{item.checklist_id}"
    assert f'value="{back}"' in page
    response = client.post(
        reverse("admin:governance_sign_off", args=[item.pk]),
        {"action": "sign", "next": back, "evidence_url": "https://wiki.example.com/qa", "note": "ok"},
    )
    assert response.url == back
    item.refresh_from_db()
    assert item.state == ChecklistItemState.SIGNED


def test_the_standalone_sign_off_button_is_an_admin_button(author, reviewer):
    release = submitted(author=author, risk_level=RiskLevel.LOW)
    item = ChecklistItem.objects.filter(checklist__release=release, signer_group__name="Reviewers").first()
    page = admin_as(reviewer).get(reverse("admin:governance_sign_off", args=[item.pk])).content.decode()
    assert 'class="button default">Sign off</button>' in page
