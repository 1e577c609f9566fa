from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from opportunities.ingestion import upsert_volumes, validate_volumes
from opportunities.selectors import week_floor
from opportunities.services import opportunity_create

WEEK = timedelta(days=7)


def volume_row(
    *,
    reason: str = "refund-status",
    market: str = "US",
    audience: str = "buyers",
    start: datetime | None = None,
    conversations: int = 1000,
    handed: int = 600,
    abandoned: int = 50,
    minutes: float = 10.0,
    **extra: Any,
) -> dict[str, Any]:
    start = start or week_floor(datetime.now().astimezone()) - WEEK
    return {
        "contact_reason": reason,
        "market": market,
        "audience": audience,
        "window_start": start.isoformat(),
        "window_end": (start + WEEK).isoformat(),
        "conversations": conversations,
        "handed_to_human": handed,
        "abandoned": abandoned,
        "avg_handle_minutes": minutes,
        **extra,
    }


def store(*rows: dict[str, Any]) -> None:
    upsert_volumes(validate_volumes(list(rows)))


def weeks_ago(n: int) -> datetime:
    """The start of the complete week ``n`` weeks before the current one."""
    return week_floor(datetime.now().astimezone()) - n * WEEK


def propose(actor: Any, **fields: Any) -> Any:
    content: dict[str, Any] = {
        "title": "Refund status answered end to end",
        "contact_reasons": ["refund-status"],
        "hypothesis": "The order lookup knows the refund state.",
        "expected_containment_lift": 0.2,
        "effort_weeks": 4,
        "confidence": 0.8,
    }
    content.update(fields)
    return opportunity_create(actor=actor, **content)
