"""The evidence pack: everything an auditor asks about a release (or a period) in one ZIP, human-readable and
machine-readable, with the audit chain verified at export time. Exporting is itself audited."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from core.audit import audit_record, audit_verify_chain
from core.errors import DomainValidationError
from core.models import AuditCheckpoint, AuditEvent
from core.service_support import require_permission
from governance.models import Approval, Checklist, ChecklistItem
from monitoring.models import Evaluation, Incident, IncidentEvent
from releases.models import Release

if TYPE_CHECKING:
    from core.actors import Actor

EXPORT_PERMISSION = "core.export_evidence"
# A period is an evidence request, not a dump of the database.
MAX_RANGE = timedelta(days=366)


@dataclass(frozen=True)
class EvidencePack:
    filename: str
    content: bytes
    sha256: str
    manifest: dict[str, Any]


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


def _csv(rows: list[dict[str, Any]], columns: list[str]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {k: json.dumps(v, sort_keys=True) if isinstance(v, dict | list) else _iso(v) for k, v in row.items()}
        )
    return out.getvalue().encode("utf-8")


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, sort_keys=True, default=_iso, ensure_ascii=False).encode("utf-8")


def chain_status() -> dict[str, Any]:
    """The audit chain verified now, with the latest signed checkpoint it was held against."""
    checked, problem = audit_verify_chain()
    checkpoint = AuditCheckpoint.objects.order_by("-id").first()
    head = AuditEvent.objects.order_by("-id").values_list("id", flat=True).first()
    return {
        "verified": problem is None,
        "events_checked": checked,
        "head_event_id": head,
        "first_problem": None if problem is None else {"event_id": problem.event_id, "problem": problem.problem},
        "checkpoint": None
        if checkpoint is None
        else {
            "id": checkpoint.pk,
            "last_event_id": checkpoint.last_event_id,
            "last_hash": checkpoint.last_hash,
            "event_count": checkpoint.event_count,
            "created_at": checkpoint.created_at.isoformat(),
        },
    }


def _scope_window(date_from: date | None, date_to: date | None) -> tuple[datetime | None, datetime | None]:
    start = datetime.combine(date_from, time.min, tzinfo=timezone.get_current_timezone()) if date_from else None
    # ``to`` is a whole day: up to the next midnight.
    end = (
        datetime.combine(date_to + timedelta(days=1), time.min, tzinfo=timezone.get_current_timezone())
        if date_to
        else None
    )
    if start and end and start >= end:
        raise DomainValidationError({"to": ["The end date must not be before the start date."]})
    if start and end and end - start > MAX_RANGE:
        raise DomainValidationError({"to": [f"Export at most {MAX_RANGE.days} days at a time."]})
    return start, end


def _in_window(field: str, start: datetime | None, end: datetime | None) -> Q:
    q = Q()
    if start:
        q &= Q(**{f"{field}__gte": start})
    if end:
        q &= Q(**{f"{field}__lt": end})
    return q


def collect(
    *, release: Release | None, start: datetime | None, end: datetime | None
) -> dict[str, list[dict[str, Any]]]:
    """The rows of the pack: by release, or (without one) every release touched in the window."""
    events = AuditEvent.objects.filter(_in_window("created_at", start, end)).order_by("id")
    if release is not None:
        events = events.filter(release_id=release.pk)
        release_ids = [release.pk]
    else:
        release_ids = sorted({rid for rid in events.values_list("release_id", flat=True) if rid is not None})
    releases = list(Release.objects.with_related().filter(pk__in=release_ids).prefetch_related("stages"))
    approvals = (
        Approval.objects.filter(release_id__in=release_ids)
        .filter(_in_window("created_at", start, end))
        .select_related("approver", "group", "release__solution")
        .order_by("created_at", "id")
    )
    checklists = (
        Checklist.objects.filter(release_id__in=release_ids)
        .select_related("release__solution")
        .order_by("release_id", "created_at", "id")
    )
    items = (
        ChecklistItem.objects.filter(checklist__in=checklists)
        .select_related("checklist", "signer_group", "signed_by")
        .order_by("checklist_id", "position")
    )
    evaluations = (
        Evaluation.objects.filter(release_id__in=release_ids)
        .filter(_in_window("evaluated_at", start, end))
        .select_related("guardrail__metric")
        .order_by("evaluated_at", "id")
    )
    incidents = list(
        Incident.objects.filter(release_id__in=release_ids)
        .filter(_in_window("opened_at", start, end))
        .select_related("guardrail__metric", "assignee")
        .order_by("opened_at", "id")
    )
    timeline: dict[int, list[dict[str, Any]]] = {}
    for event in (
        IncidentEvent.objects.filter(incident__in=incidents).select_related("actor").order_by("created_at", "id")
    ):
        timeline.setdefault(event.incident_id, []).append(
            {
                "kind": event.kind,
                "at": event.created_at,
                "actor": event.actor.get_username() if event.actor else "system",
                "message": event.message,
                "data": event.data,
            }
        )
    audit_rows = [
        {
            "id": e.pk,
            "created_at": e.created_at,
            "actor": e.actor_label,
            "action": e.action,
            "object_type": e.object_type,
            "object_id": e.object_id,
            "release_id": e.release_id,
            "from_state": e.from_state,
            "to_state": e.to_state,
            "reason": e.reason,
            "data": e.data,
            "prev_hash": e.prev_hash,
            "hash": e.hash,
        }
        for e in events
    ]
    return {
        "releases": [
            {
                "id": r.pk,
                "solution": r.solution.key,
                "version": r.version,
                "title": r.title,
                "status": r.status,
                "risk_level": r.risk_level,
                "is_emergency": r.is_emergency,
                "author": r.author.get_username(),
                "content_hash": r.content_hash,
                "content": r.content_snapshot(),
                "submitted_at": r.submitted_at,
                "approved_at": r.approved_at,
                "launched_at": r.launched_at,
                "closed_at": r.closed_at,
            }
            for r in releases
        ],
        "audit_events": audit_rows,
        "approvals": [
            {
                "id": a.pk,
                "release_id": a.release_id,
                "approver": a.approver.get_username(),
                "group": a.group.name,
                "decision": a.decision,
                "approved_content_hash": a.content_hash,
                "comment": a.comment,
                "created_at": a.created_at,
                "expires_at": a.expires_at,
                "dismissed_at": a.dismissed_at,
                "dismiss_reason": a.dismiss_reason,
            }
            for a in approvals
        ],
        "checklists": [
            {
                "id": c.pk,
                "release_id": c.release_id,
                "gate": c.gate,
                "name": c.name,
                "template_version": c.template_version,
                "status": c.status,
                "created_at": c.created_at,
                "completed_at": c.completed_at,
            }
            for c in checklists
        ],
        "checklist_items": [
            {
                "id": i.pk,
                "checklist_id": i.checklist_id,
                "release_id": i.checklist.release_id,
                "gate": i.checklist.gate,
                "position": i.position,
                "question": i.question,
                "signer_group": i.signer_group.name,
                "required": i.required,
                "state": i.state,
                "signed_by": i.signed_by.get_username() if i.signed_by else "",
                "signed_at": i.signed_at,
                "evidence_url": i.evidence_url,
                "note": i.note,
                "na_justification": i.na_justification,
            }
            for i in items
        ],
        "freeze_overrides": [row for row in audit_rows if row["action"] == "freeze_window.overridden"],
        "evaluations": [
            {
                "id": e.pk,
                "release_id": e.release_id,
                "guardrail": str(e.guardrail),
                "metric": e.guardrail.metric.key,
                "market": e.market,
                "window_start": e.window_start,
                "window_end": e.window_end,
                "outcome": e.outcome,
                "observed": e.observed,
                "lower": e.lower,
                "upper": e.upper,
                "n": e.n,
                "baseline": e.baseline,
                "breached": e.breached,
                "dry_run": e.dry_run,
                "evaluated_at": e.evaluated_at,
            }
            for e in evaluations
        ],
        "incidents": [
            {
                "id": i.pk,
                "release_id": i.release_id,
                "title": i.title,
                "market": i.market,
                "severity": i.severity,
                "status": i.status,
                "resolution": i.resolution,
                "opened_at": i.opened_at,
                "acknowledged_at": i.acknowledged_at,
                "mitigated_at": i.mitigated_at,
                "resolved_at": i.resolved_at,
                "assignee": i.assignee.get_username() if i.assignee else "",
                "timeline": timeline.get(i.pk, []),
            }
            for i in incidents
        ],
    }


CSV_COLUMNS = {
    "audit_events": ["id", "created_at", "actor", "action", "object_type", "object_id", "release_id", "from_state",
                     "to_state", "reason", "data", "prev_hash", "hash"],
    "approvals": ["id", "release_id", "approver", "group", "decision", "approved_content_hash", "comment",
                  "created_at", "expires_at", "dismissed_at", "dismiss_reason"],
    "checklist_items": ["id", "checklist_id", "release_id", "gate", "position", "question", "signer_group",
                        "required", "state", "signed_by", "signed_at", "evidence_url", "note", "na_justification"],
    "evaluations": ["id", "release_id", "guardrail", "metric", "market", "window_start", "window_end", "outcome",
                    "observed", "lower", "upper", "n", "baseline", "breached", "dry_run", "evaluated_at"],
}  # fmt: skip


# The human-readable report, for a browser and for print: the PDF is the same HTML, laid out by WeasyPrint.
REPORT_FILES = ("report.html", "report.pdf")


def report_pdf(html: str) -> bytes:
    """The report as PDF. Everything it needs is inline (styles, no images, no web fonts), so it fetches nothing:
    the report quotes evidence links that people typed, and an export must never reach out to them."""
    # Imported here: WeasyPrint loads Pango and its fonts, a cost only an export should pay.
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    return bytes(HTML(string=html, url_fetcher=URLFetcher(allowed_protocols=())).write_pdf())


@transaction.atomic
def evidence_pack_export(
    *,
    actor: Actor,
    release: Release | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    now: datetime | None = None,
) -> EvidencePack:
    """Build the pack and record the export (who, what scope, the pack's hashes and the chain status)."""
    require_permission(actor, EXPORT_PERMISSION, "export evidence")
    if release is None and date_from is None and date_to is None:
        raise DomainValidationError({"release": ["Choose a release or a date range."]})
    start, end = _scope_window(date_from, date_to)
    now = now or timezone.now()
    chain = chain_status()
    data = collect(release=release, start=start, end=end)
    scope = {
        "release": release.pk if release else None,
        "release_label": str(release) if release else None,
        "from": date_from.isoformat() if date_from else None,
        "to": date_to.isoformat() if date_to else None,
    }
    files: dict[str, bytes] = {f"{name}.json": _json(rows) for name, rows in data.items() if name != "checklist_items"}
    files["checklist_items.json"] = _json(data["checklist_items"])
    for name, columns in CSV_COLUMNS.items():
        files[f"{name}.csv"] = _csv(data[name], columns)
    manifest: dict[str, Any] = {
        "generator": "Rollgate evidence pack",
        "scope": scope,
        "exported_at": now.isoformat(),
        "exported_by": actor.get_username(),
        "chain": chain,
        "counts": {name: len(rows) for name, rows in data.items()},
        "files": {name: hashlib.sha256(content).hexdigest() for name, content in sorted(files.items())},
    }
    report = render_to_string("evidence/report.html", {"manifest": manifest, "data": data, "scope": scope})
    files["report.html"] = report.encode("utf-8")
    files["report.pdf"] = report_pdf(report)
    for name in REPORT_FILES:
        manifest["files"][name] = hashlib.sha256(files[name]).hexdigest()
    files["manifest.json"] = _json(manifest)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        first = [*REPORT_FILES, "manifest.json"]
        for name in [*first, *sorted(n for n in files if n not in first)]:
            archive.writestr(zipfile.ZipInfo(name, date_time=now.timetuple()[:6]), files[name], zipfile.ZIP_DEFLATED)
    content = buffer.getvalue()
    digest = hashlib.sha256(content).hexdigest()
    label = f"release-{release.pk}" if release else f"{scope['from'] or 'start'}_{scope['to'] or 'now'}"
    audit_record(
        actor=actor,
        action="evidence.exported",
        obj=release if release is not None else actor,
        release_id=release.pk if release else None,
        reason="Evidence pack exported",
        data={"scope": scope, "zip_sha256": digest, "chain_verified": chain["verified"], "counts": manifest["counts"]},
    )
    return EvidencePack(filename=f"rollgate-evidence-{label}.zip", content=content, sha256=digest, manifest=manifest)
