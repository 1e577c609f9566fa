"""Monitoring's refusals, as ``core.errors`` classes so the one API handler maps them."""

from typing import Any

from core.errors import DomainError, DomainValidationError


class TooManyRows(DomainError):
    status_code = 413
    default_code = "too_many_rows"


class IngestConflict(DomainError):
    """The database aborted the upsert as a deadlock or serialization failure, again after retries (409)."""

    default_code = "ingest_conflict"


class InvalidRows(DomainValidationError):
    """Some rows of a batch are invalid; nothing was written. ``rows`` lists each bad row by its index."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        super().__init__({"rows": [f"row {row['index']}: {row['errors']}" for row in rows]}, code="invalid_rows")

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "detail": f"{len(self.rows)} invalid row(s); nothing was written.",
            "rows": self.rows,
        }
