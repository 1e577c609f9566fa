"""Bulk, idempotent ingestion of contact-reason volumes — the metric-sample contract (``monitoring.services
.ingestion``): a list of up to 10,000 rows, every row validated (one query), all or nothing with row-indexed
errors, one upsert statement keyed on the natural key, rows written in key order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from core.actors import Actor

# The same parsing rules as metric samples: JSON integers for counts, aware ISO 8601 date-times.
from core.bulk_input import as_count, as_datetime, as_number
from core.service_support import require_permission
from monitoring.errors import InvalidRows, TooManyRows
from releases.choices import Audience
from releases.models import AutomationSolution

from .choices import VolumeArm
from .models import ContactReasonVolume

MAX_ROWS = 10_000
INGEST_PERMISSION = "opportunities.add_contactreasonvolume"
UNIQUE_FIELDS = ["source", "contact_reason", "market", "audience", "arm", "served_by", "window_start"]
UPDATE_FIELDS = [
    "solution",
    "window_end",
    "conversations",
    "handed_to_human",
    "abandoned",
    "avg_handle_minutes",
    "csat_responses",
    "csat_positive",
    "received_at",
]
COUNT_FIELDS = ("conversations", "handed_to_human", "abandoned")
# A week of one reason in one market is far below this; anything larger is a unit error upstream.
MAX_HANDLE_MINUTES = 24 * 60
_AUDIENCES = set(Audience.values)
_ARMS = set(VolumeArm.values)


@dataclass(frozen=True)
class VolumeIngestResult:
    rows: int
    contact_reasons: tuple[str, ...]


def validate_volumes(rows: Sequence[Any], *, now: datetime | None = None) -> list[ContactReasonVolume]:
    """Validate every row (one query: the solutions named) and return unsaved rows, or raise ``InvalidRows``."""
    if len(rows) > MAX_ROWS:
        raise TooManyRows(f"At most {MAX_ROWS} rows per request; got {len(rows)}.", extra={"max_rows": MAX_ROWS})
    now = now or timezone.now()
    keys = {row.get("solution") for row in rows if isinstance(row, Mapping) and isinstance(row.get("solution"), str)}
    solutions = {s.key: s.pk for s in AutomationSolution.objects.filter(key__in=keys - {""}).only("id", "key")}

    volumes: list[ContactReasonVolume] = []
    bad: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], int] = {}
    for index, row in enumerate(rows):
        errors: dict[str, list[str]] = {}

        def err(field: str, message: str, errors: dict[str, list[str]] = errors) -> None:
            errors.setdefault(field, []).append(message)

        if not isinstance(row, Mapping):
            bad.append({"index": index, "errors": {"non_field_errors": ["Each row must be an object."]}})
            continue
        reason = row.get("contact_reason")
        if not isinstance(reason, str) or not reason or len(reason) > 80 or slugify(reason) != reason:
            err("contact_reason", "A contact-reason slug of at most 80 characters (e.g. 'refund-status').")
        market = row.get("market")
        if not isinstance(market, str) or not market.strip() or len(market) > 16:
            err("market", "A market code of at most 16 characters is required.")
        audience = row.get("audience")
        if audience not in _AUDIENCES:
            err("audience", f"Audience must be one of {sorted(_AUDIENCES)}.")
        arm = row.get("arm") or VolumeArm.ALL
        if arm not in _ARMS:
            err("arm", f"Arm must be one of {sorted(_ARMS)}.")
        source = row.get("source") or "api"
        if not isinstance(source, str) or len(source) > 64:
            err("source", "A source name of at most 64 characters.")
        served_by = row.get("solution") or ""
        solution_id = None
        if not isinstance(served_by, str):
            err("solution", "The key of the solution that served them, or blank for none.")
        elif served_by:
            solution_id = solutions.get(served_by)
            if solution_id is None:
                err("solution", f"Unknown solution {served_by!r}.")
        start, end = as_datetime(row.get("window_start")), as_datetime(row.get("window_end"))
        if start is None:
            err("window_start", "An ISO 8601 date-time with a time zone is required.")
        if end is None:
            err("window_end", "An ISO 8601 date-time with a time zone is required.")
        if start is not None and end is not None and end <= start:
            err("window_end", "The window must end after it starts.")

        counts: dict[str, int] = {}
        for field in (*COUNT_FIELDS, "csat_responses", "csat_positive"):
            raw = row.get(field, 0 if field.startswith("csat") else None)
            count = as_count(raw)
            if count is None:
                err(field, "A whole number is required.")
            elif count < 0:
                err(field, "Must not be negative.")
            else:
                counts[field] = count
        if len(counts) == 5:
            if counts["handed_to_human"] + counts["abandoned"] > counts["conversations"]:
                err("conversations", "Must be at least handed_to_human + abandoned.")
            if counts["csat_positive"] > counts["csat_responses"]:
                err("csat_positive", "Must not be above csat_responses.")
            if counts["csat_responses"] > counts["conversations"]:
                err("csat_responses", "Must not be above conversations.")
        handle = as_number(row.get("avg_handle_minutes", 0 if counts.get("handed_to_human") == 0 else None))
        if handle is None:
            err("avg_handle_minutes", "A finite number of minutes is required when conversations were handed off.")
        elif not 0 <= handle <= MAX_HANDLE_MINUTES:
            err("avg_handle_minutes", f"Between 0 and {MAX_HANDLE_MINUTES} minutes.")

        if not errors:
            key = (source, reason, market, audience, arm, served_by, start)
            if key in seen:
                err(
                    "non_field_errors",
                    f"Same (source, contact_reason, market, audience, arm, solution, window_start) as row {seen[key]}.",
                )
            else:
                seen[key] = index
        if errors:
            bad.append({"index": index, "errors": errors})
            continue
        assert start is not None and end is not None and handle is not None
        assert isinstance(reason, str) and isinstance(market, str) and isinstance(audience, str)
        volumes.append(
            ContactReasonVolume(
                source=source,
                contact_reason=reason,
                market=market,
                audience=audience,
                arm=arm,
                served_by=served_by,
                solution_id=solution_id,
                window_start=start,
                window_end=end,
                avg_handle_minutes=handle,
                received_at=now,
                **counts,
            )
        )
    if bad:
        raise InvalidRows(bad)
    return volumes


def _natural_key(volume: ContactReasonVolume) -> tuple[Any, ...]:
    return tuple(getattr(volume, field) for field in UNIQUE_FIELDS)


def upsert_volumes(volumes: Iterable[ContactReasonVolume]) -> None:
    # One INSERT ... ON CONFLICT DO UPDATE; rows in key order so two overlapping batches lock in the same order.
    ContactReasonVolume.objects.bulk_create(
        sorted(volumes, key=_natural_key),
        update_conflicts=True,
        unique_fields=UNIQUE_FIELDS,
        update_fields=UPDATE_FIELDS,
        batch_size=2_000,
    )


@transaction.atomic
def contact_reason_volumes_ingest(*, rows: Sequence[Any], actor: Actor | None) -> VolumeIngestResult:
    """Validate and upsert ``rows`` (all or nothing). Re-sending a window updates it in place.

    ``actor`` None is a trusted caller (the CSV command run by an operator); a person needs the ingest permission.
    """
    if actor is not None:
        require_permission(actor, INGEST_PERMISSION, "send contact-reason data")
    volumes = validate_volumes(rows)
    upsert_volumes(volumes)
    return VolumeIngestResult(rows=len(volumes), contact_reasons=tuple(sorted({v.contact_reason for v in volumes})))
