"""Reading bulk rows the same way everywhere (metric samples, contact-reason volumes): JSON values to counts,
numbers and aware date-times, and a CSV file to the rows the API would have received."""

from __future__ import annotations

import csv
import math
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

# PostgreSQL's bigint (and SQLite's INTEGER): a larger number is a bad row, not a database error.
MAX_STORABLE_INT = 2**63 - 1


def as_datetime(value: Any) -> datetime | None:
    """An aware ISO 8601 date-time, or None: a naive one would be read in the server's zone, silently."""
    if isinstance(value, datetime):
        parsed: datetime | None = value
    elif isinstance(value, str):
        try:
            parsed = parse_datetime(value.strip())
        except ValueError:
            return None
    else:
        return None
    if parsed is None or timezone.is_naive(parsed):
        return None
    return parsed


def as_count(value: Any) -> int | None:
    # JSON integers only: a bool is not a count, and 2.5 conversations is a bug upstream.
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and abs(value) <= MAX_STORABLE_INT:
        return value
    return None


def as_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # a JSON integer with hundreds of digits
        return None
    return number if math.isfinite(number) else None


def _cell(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)  # "nan" and "inf" parse here and are refused by validation like any other
    except ValueError:
        return text


def read_csv_rows(path: str, *, required: Sequence[str], text_columns: Collection[str]) -> list[dict[str, Any]]:
    """The rows of a CSV file as the API's JSON rows: numbers parsed except in ``text_columns``, an empty cell
    left out ("not sent", as in JSON). A missing required column or an unreadable file is a CommandError."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [column for column in required if column not in (reader.fieldnames or [])]
            if missing:
                raise CommandError(f"Missing column(s): {', '.join(missing)}")
            rows = []
            for raw in reader:
                row: dict[str, Any] = {}
                for key, value in raw.items():
                    text = (value or "").strip() if isinstance(value, str | None) else ""
                    if key and text:
                        row[key] = text if key in text_columns else _cell(text)
                rows.append(row)
            return rows
    except OSError as exc:
        raise CommandError(str(exc)) from exc
