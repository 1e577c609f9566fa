"""The auditors' evidence pack: what is in it, who may export it (Auditors only), that exporting is audited, and
where it is offered (release page, audit log, API). Also the audit log page: newest first, filters, chain status."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile

import pytest
from django.urls import reverse
from django.utils import timezone

from core.audit import audit_checkpoint
from core.models import AuditEvent
from evidence.services import evidence_pack_export, report_pdf
from governance.models import Approval, ChecklistItem
from releases.choices import ReleaseStatus as S
from tests.conftest import admin_as, api_as
from tests.factories import advance_release, make_release
from tests.governance.test_audit import _tamper

pytestmark = pytest.mark.django_db


@pytest.fixture
def launched(author, solution, program_manager):
    return advance_release(make_release(author=author, solution=solution), S.LAUNCHED, program_manager=program_manager)


def _open(content: bytes) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(content))


def test_the_pack_of_a_release_holds_report_and_data_and_is_audited(launched, auditor):
    audit_checkpoint()
    before = AuditEvent.objects.count()
    pack = evidence_pack_export(actor=auditor, release=launched)
    archive = _open(pack.content)
    names = set(archive.namelist())
    assert {"report.html", "manifest.json", "audit_events.csv", "approvals.csv", "checklist_items.csv"} <= names
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["chain"]["verified"] is True and manifest["chain"]["checkpoint"] is not None
    assert manifest["scope"]["release"] == launched.pk and manifest["exported_by"] == auditor.username
    approvals = json.loads(archive.read("approvals.json"))
    assert {a["approved_content_hash"] for a in approvals} == {launched.content_hash}
    assert len(approvals) == Approval.objects.filter(release=launched).count()
    items = list(csv.DictReader(io.StringIO(archive.read("checklist_items.csv").decode())))
    signed = ChecklistItem.objects.filter(checklist__release=launched, state="signed").count()
    assert sum(1 for row in items if row["state"] == "signed" and row["signed_by"]) == signed
    events = json.loads(archive.read("audit_events.json"))
    assert [e["action"] for e in events][:2] == ["release.created", "release.submit"]
    assert {e["release_id"] for e in events} == {launched.pk}
    report = archive.read("report.html").decode()
    assert "Verified" in report and launched.content_hash in report
    # Exporting is itself on the record, with the ZIP's hash.
    assert AuditEvent.objects.count() == before + 1
    exported = AuditEvent.objects.order_by("-id").first()
    assert exported.action == "evidence.exported" and exported.data["zip_sha256"] == pack.sha256


def test_the_pack_holds_the_report_as_a_pdf(launched, auditor):
    from pypdf import PdfReader

    audit_checkpoint()
    pack = evidence_pack_export(actor=auditor, release=launched)
    archive = _open(pack.content)
    assert archive.namelist()[:3] == ["report.html", "report.pdf", "manifest.json"]
    pdf = archive.read("report.pdf")
    assert pdf.startswith(b"%PDF-")
    manifest = json.loads(archive.read("manifest.json"))
    assert manifest["files"]["report.pdf"] == hashlib.sha256(pdf).hexdigest()
    reader = PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) >= 1
    # Landscape A4 for the wide tables.
    box = reader.pages[0].mediabox
    assert (round(float(box.width)), round(float(box.height))) == (842, 595)
    text = " ".join(page.extract_text() for page in reader.pages)
    assert launched.title in text and "Verified" in text
    assert launched.content_hash in text.replace("\n", "")
    assert f"Page 1 of {len(reader.pages)}" in text


def test_the_pdf_report_fetches_nothing(tmp_path):
    from pypdf import PdfReader

    stylesheet = tmp_path / "leak.css"
    stylesheet.write_text('body::before { content: "FETCHED" }')
    html = f'<html><head><link rel="stylesheet" href="{stylesheet.as_uri()}"></head><body><p>Report</p></body></html>'
    text = PdfReader(io.BytesIO(report_pdf(html))).pages[0].extract_text()
    assert "Report" in text and "FETCHED" not in text


def test_a_broken_chain_is_reported_in_the_pack(launched, auditor):
    _tamper("UPDATE governance_auditevent SET reason = 'tampered' WHERE id = %s", [AuditEvent.objects.first().pk])
    manifest = json.loads(_open(evidence_pack_export(actor=auditor, release=launched).content).read("manifest.json"))
    assert manifest["chain"]["verified"] is False
    assert "altered" in manifest["chain"]["first_problem"]["problem"]


@pytest.mark.parametrize("persona", ["author", "program_manager", "reviewer", "oncall", "outsider"])
def test_only_auditors_export(request, persona, launched):
    before = AuditEvent.objects.count()
    client = api_as(request.getfixturevalue(persona))
    assert client.get(f"/api/v1/releases/{launched.pk}/evidence/").status_code == 403
    assert client.get("/api/v1/audit-events/evidence/?from=2020-01-01&to=2020-01-02").status_code == 403
    assert AuditEvent.objects.count() == before
    page = admin_as(request.getfixturevalue(persona)).get(reverse("admin:releases_release_change", args=[launched.pk]))
    assert 'id="evidence-download"' not in page.content.decode()


def test_api_exports_by_release_and_by_date_range(launched, auditor):
    client = api_as(auditor)
    response = client.get(f"/api/v1/releases/{launched.pk}/evidence/")
    assert response.status_code == 200 and response["Content-Type"] == "application/zip"
    assert "report.html" in _open(response.content).namelist()
    today = timezone.localdate().isoformat()
    ranged = client.get(f"/api/v1/audit-events/evidence/?from={today}&to={today}")
    assert ranged.status_code == 200
    releases = json.loads(_open(ranged.content).read("releases.json"))
    assert launched.pk in {r["id"] for r in releases}
    assert client.get("/api/v1/audit-events/evidence/?from=2026-02-01&to=2026-01-01").status_code == 400
    assert client.get("/api/v1/audit-events/evidence/").status_code == 400


def test_admin_offers_the_pack_on_the_release_page_and_the_audit_log(launched, auditor):
    client = admin_as(auditor)
    page = client.get(reverse("admin:releases_release_change", args=[launched.pk])).content.decode()
    assert 'id="evidence-download"' in page
    download = client.get(reverse("evidence_release", args=[launched.pk]))
    assert download["Content-Type"] == "application/zip"
    assert "report.html" in _open(download.content).namelist()
    log = client.get(reverse("admin:core_auditevent_changelist")).content.decode()
    assert 'id="evidence-range-form"' in log
    today = timezone.localdate().isoformat()
    ranged = client.get(reverse("evidence_range") + f"?date_from={today}&date_to={today}")
    assert ranged["Content-Type"] == "application/zip"


def test_the_audit_log_is_newest_first_filterable_and_shows_the_chain_status(launched, author, auditor):
    client = admin_as(auditor)
    url = reverse("admin:core_auditevent_changelist")
    assert "No signed checkpoint yet" in client.get(url).content.decode()
    checkpoint = audit_checkpoint()
    page = client.get(url)
    shown = [row.pk for row in page.context["cl"].result_list]
    assert shown == sorted(shown, reverse=True)
    assert f"Chain verified up to event #{checkpoint.last_event_id}" in page.content.decode()
    other = make_release(author=author)
    by_release = client.get(url + f"?release={other.pk}").context["cl"].result_list
    assert {e.release_id for e in by_release} == {other.pk}
    by_actor = client.get(url + f"?actor={author.username}").context["cl"].result_list
    assert by_actor and {e.actor_label for e in by_actor} == {author.username}
    api = api_as(auditor).get(f"/api/v1/audit-events/?release={other.pk}").json()
    ids = [e["id"] for e in api["results"]]
    assert ids == sorted(ids, reverse=True) and {e["release"] for e in api["results"]} == {other.pk}
