"""Bulk, idempotent ingestion of metric samples: validate every row with two queries, write with one set-based
upsert (on PostgreSQL from a COPY-filled staging table)."""

from __future__ import annotations

import logging
import operator
import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg
from django.db import OperationalError, transaction
from django.utils import timezone

from core.bulk_input import MAX_STORABLE_INT, as_count, as_datetime, as_number
from releases.models import Release

from ..choices import Arm, MetricKind
from ..errors import IngestConflict, InvalidRows, TooManyRows
from ..models import MetricDefinition, MetricSample

logger = logging.getLogger(__name__)

MAX_ROWS = 10_000
INGEST_ATTEMPTS = 4
SUM_FIELDS = ("sum_x", "sum_y", "sum_xx", "sum_yy", "sum_xy")
_ARMS = {arm.value for arm in Arm}


@dataclass(frozen=True)
class IngestResult:
    rows: int
    release_ids: tuple[int, ...]


# Sane bounds on a window: metrics describe conversations that happened (a little clock skew allowed), within
# the retention of live metrics; year 1 or 9999 is a broken sender, not data.
OLDEST_SAMPLE = timedelta(days=3 * 365)
LATEST_SAMPLE_END = timedelta(hours=1)
LONGEST_WINDOW = timedelta(days=31)


def _as_release_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, int) and 0 < value <= MAX_STORABLE_INT:
        return value
    return None


def _out_of_range(number: float, metric: MetricDefinition) -> str | None:
    # The definition states its range (rates: of their counts; gauges: of the value). A value outside it is this
    # row's error: stored, it would overflow the evaluation's aggregates and stop the batch of every release.
    if metric.min_value is not None and number < metric.min_value:
        return f"Below {metric.key}'s minimum of {metric.min_value:g}{metric.unit and ' ' + metric.unit}."
    if metric.max_value is not None and number > metric.max_value:
        return f"Above {metric.key}'s maximum of {metric.max_value:g}{metric.unit and ' ' + metric.unit}."
    return None


def _unit_sums(
    row: Mapping[str, Any], metric: MetricDefinition, numerator: int | None, denominator: int | None, err: Any
) -> dict[str, Any]:
    """The per-conversation sums of the delta method (units, Σx, Σy, Σx², Σy², Σxy): all or none, on a rate,
    consistent with the counts (Σx is the numerator, Σy the denominator), finite and within the definition's
    range squared — so they can neither lie about the counts nor overflow the cohort's aggregate."""
    present = [f for f in ("units", *SUM_FIELDS) if row.get(f) is not None]
    if not present:
        return {}
    if metric.kind != MetricKind.RATE:
        err("units", f"{metric.key} is a gauge: per-conversation sums apply to rates only.")
        return {}
    if len(present) != 1 + len(SUM_FIELDS):
        err("units", "Send units with all of sum_x, sum_y, sum_xx, sum_yy and sum_xy, or none of them.")
        return {}
    units = as_count(row.get("units"))
    if units is None or units < 1:
        err("units", "A whole number of conversations, at least 1.")
    sums = {f: as_number(row.get(f)) for f in SUM_FIELDS}
    limit = metric.max_value**2 if metric.max_value is not None else None
    for field, number in sums.items():
        if number is None or number < 0:
            err(field, "A finite number, not negative.")
        elif limit is not None and number > limit:
            err(field, f"Above {metric.key}'s range ({limit:g}).")
    if sums["sum_x"] is not None and numerator is not None and sums["sum_x"] != numerator:
        err("sum_x", "Must equal the numerator (Σx over the conversations).")
    if sums["sum_y"] is not None and denominator is not None and sums["sum_y"] != denominator:
        err("sum_y", "Must equal the denominator (Σy over the conversations).")
    return {"units": units, **sums}


# Each validated row is one tuple in this column order: what COPY streams into the staging table and what the
# set-based upsert reads back, with no model instance per row.
SAMPLE_COLUMNS = (
    "source",
    "release_id",
    "metric_id",
    "metric_version",
    "market",
    "arm",
    "window_start",
    "window_end",
    "numerator",
    "denominator",
    "value",
    "units",
    *SUM_FIELDS,
    "received_at",
)
KEY_COLUMNS = ("source", "release_id", "metric_id", "market", "arm", "window_start")
# Compared to decide whether a re-sent row changed; received_at is not data, so an identical re-send updates nothing.
COMPARED_COLUMNS = tuple(c for c in SAMPLE_COLUMNS if c not in KEY_COLUMNS and c != "received_at")
_RELEASE = SAMPLE_COLUMNS.index("release_id")
_KEY_POSITIONS = tuple(SAMPLE_COLUMNS.index(column) for column in KEY_COLUMNS)
_natural_key = operator.itemgetter(*_KEY_POSITIONS)
_SUM_KEYS = ("units", *SUM_FIELDS)
_NO_SUMS = (None,) * len(_SUM_KEYS)
_TREATMENT = Arm.TREATMENT.value
# The session's staging table: created on first use in a transaction, emptied at every commit.
STAGING_TABLE = "rollgate_metric_sample_staging"


@dataclass(frozen=True)
class ValidSamples:
    """A validated batch: one tuple per row in ``SAMPLE_COLUMNS`` order, no duplicate natural key."""

    rows: list[tuple[Any, ...]]

    @property
    def release_ids(self) -> tuple[int, ...]:
        return tuple(sorted({row[_RELEASE] for row in self.rows}))

    @classmethod
    def from_models(cls, samples: Iterable[MetricSample]) -> ValidSamples:
        return cls([tuple(getattr(sample, column) for column in SAMPLE_COLUMNS) for sample in samples])

    def as_models(self) -> list[MetricSample]:
        return [MetricSample(**dict(zip(SAMPLE_COLUMNS, row, strict=True))) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class _Lookups:
    """What every row is checked against: the batch's releases and metrics (two queries) and the clock."""

    releases: dict[int, dict[str, Any]]
    metrics: dict[str, MetricDefinition]
    now: datetime
    # Senders repeat a handful of window bounds across thousands of rows: parse each distinct string once.
    datetimes: dict[str, datetime | None]

    def __post_init__(self) -> None:
        self.oldest_start = self.now - OLDEST_SAMPLE
        self.latest_end = self.now + LATEST_SAMPLE_END
        self.markets = {release_id: release["markets"] for release_id, release in self.releases.items()}

    def parse_datetime(self, text: str) -> datetime | None:
        try:
            return self.datetimes[text]
        except KeyError:
            parsed = self.datetimes[text] = as_datetime(text)
            return parsed


def _fast_record(row: Any, lookups: _Lookups) -> tuple[Any, ...] | None:
    """The row's tuple when it is plainly valid, in the shape senders use (JSON integers and strings, no
    per-conversation sums); ``None`` for anything else, which ``_checked_record`` then judges and explains.
    It accepts nothing ``_checked_record`` would refuse, and stores the same values."""
    if type(row) is not dict:
        return None
    release_id = row.get("release")
    if type(release_id) is not int:
        return None
    markets = lookups.markets.get(release_id)
    if markets is None:
        return None
    metric_key = row.get("metric")
    if type(metric_key) is not str:
        return None
    metric = lookups.metrics.get(metric_key)
    market = row.get("market")
    if metric is None or type(market) is not str or len(market) > 16 or not market.strip():
        return None
    if markets and market not in markets:
        return None
    arm = row.get("arm")
    if not arm:
        arm = _TREATMENT
    elif type(arm) is not str or arm not in _ARMS:
        return None
    source = row.get("source")
    if not source:
        source = "api"
    elif type(source) is not str or len(source) > 64:
        return None
    start_text, end_text = row.get("window_start"), row.get("window_end")
    if type(start_text) is not str or type(end_text) is not str:
        return None
    start, end = lookups.parse_datetime(start_text), lookups.parse_datetime(end_text)
    if start is None or end is None or end <= start or end - start > LONGEST_WINDOW:
        return None
    if start < lookups.oldest_start or end > lookups.latest_end:
        return None
    for field in _SUM_KEYS:
        if row.get(field) is not None:
            return None
    low, high = metric.min_value, metric.max_value
    numerator = denominator = value = None
    if metric.kind == MetricKind.RATE:
        numerator, denominator = row.get("numerator"), row.get("denominator")
        if type(numerator) is not int or type(denominator) is not int or row.get("value") is not None:
            return None
        if not 0 <= numerator <= denominator <= MAX_STORABLE_INT:
            return None
        if (low is not None and numerator < low) or (high is not None and denominator > high):
            return None
    else:
        raw_value = row.get("value")
        if type(raw_value) is not float and type(raw_value) is not int:
            return None
        value = as_number(raw_value)
        if value is None or value < 0 or (low is not None and value < low) or (high is not None and value > high):
            return None
        denominator = row.get("denominator")
        if denominator is not None and (type(denominator) is not int or not 0 <= denominator <= MAX_STORABLE_INT):
            return None
    return (
        source,
        release_id,
        metric.pk,
        metric.version,
        market,
        arm,
        start,
        end,
        numerator,
        denominator,
        value,
        *_NO_SUMS,
        lookups.now,
    )


def _checked_record(row: Any, lookups: _Lookups) -> tuple[tuple[Any, ...] | None, dict[str, list[str]]]:
    """Every rule, with its message: the row's tuple, or the errors by field."""
    errors: dict[str, list[str]] = {}

    def err(field: str, message: str) -> None:
        errors.setdefault(field, []).append(message)

    if not isinstance(row, Mapping):
        return None, {"non_field_errors": ["Each row must be an object."]}
    now = lookups.now
    release_id = _as_release_id(row.get("release"))
    release = lookups.releases.get(release_id) if release_id is not None else None
    if release_id is None:
        err("release", "A release id is required.")
    elif release is None:
        err("release", f"Unknown release {release_id}.")
    metric_key = row.get("metric")
    metric = lookups.metrics.get(metric_key) if isinstance(metric_key, str) else None
    if metric is None:
        err("metric", f"Unknown metric {row.get('metric')!r}.")
    market = row.get("market")
    if not isinstance(market, str) or not market.strip() or len(market) > 16:
        err("market", "A market code of at most 16 characters is required.")
    elif release is not None and release["markets"] and market not in release["markets"]:
        err("market", f"Market {market!r} is not one of the release's markets {release['markets']}.")
    arm = row.get("arm", Arm.TREATMENT) or Arm.TREATMENT
    if not isinstance(arm, str) or arm not in _ARMS:
        err("arm", f"Arm must be one of {sorted(_ARMS)}.")
    source = row.get("source", "api") or "api"
    if not isinstance(source, str) or len(source) > 64:
        err("source", "A source name of at most 64 characters.")
    start, end = as_datetime(row.get("window_start")), as_datetime(row.get("window_end"))
    if start is None:
        err("window_start", "An ISO 8601 date-time with a time zone is required.")
    if end is None:
        err("window_end", "An ISO 8601 date-time with a time zone is required.")
    if start is not None and end is not None and end <= start:
        err("window_end", "The window must end after it starts.")
    if start is not None and start < now - OLDEST_SAMPLE:
        err("window_start", f"A sample window cannot start more than {OLDEST_SAMPLE.days} days ago.")
    if end is not None and end > now + LATEST_SAMPLE_END:
        err("window_end", "A sample window cannot end in the future (conversations not had yet).")
    if start is not None and end is not None and end - start > LONGEST_WINDOW:
        err("window_end", f"A sample window is at most {LONGEST_WINDOW.days} days long.")

    numerator = denominator = value = None
    if metric is not None and metric.kind == MetricKind.RATE:
        numerator, denominator = as_count(row.get("numerator")), as_count(row.get("denominator"))
        if numerator is None:
            err("numerator", "A whole number is required.")
        elif numerator < 0:
            err("numerator", "Must not be negative.")
        if denominator is None:
            err("denominator", "A whole number is required.")
        elif denominator < 0:
            err("denominator", "Must not be negative.")
        if numerator is not None and denominator is not None and numerator > denominator >= 0:
            err("numerator", "Must not be above the denominator.")
        for field, count in (("numerator", numerator), ("denominator", denominator)):
            if count is not None and count >= 0 and (problem := _out_of_range(count, metric)):
                err(field, problem)
        if row.get("value") is not None:
            err("value", f"{metric.key} is a rate: send numerator and denominator, not a value.")
    elif metric is not None:
        value = as_number(row.get("value"))
        if value is None:
            err("value", "A finite number is required.")
        elif value < 0:
            err("value", "Must not be negative.")
        elif problem := _out_of_range(value, metric):
            err("value", problem)
        if row.get("denominator") is not None:
            denominator = as_count(row.get("denominator"))
            if denominator is None or denominator < 0:
                err("denominator", "A whole number, not negative.")

    unit_sums = _unit_sums(row, metric, numerator, denominator, err) if metric is not None else {}
    if errors:
        return None, errors
    assert metric is not None and release_id is not None and start is not None and end is not None
    sums = tuple(unit_sums.get(field) for field in ("units", *SUM_FIELDS))
    record = (source, release_id, metric.pk, metric.version, market, str(arm), start, end, numerator, denominator)
    return (*record, value, *sums, now), errors


def validate_rows(rows: Sequence[Any], *, now: datetime | None = None) -> ValidSamples:
    """Validate every row (two queries in all) and return them as tuples, or raise ``InvalidRows``."""
    if len(rows) > MAX_ROWS:
        raise TooManyRows(f"At most {MAX_ROWS} rows per request; got {len(rows)}.", extra={"max_rows": MAX_ROWS})
    release_ids, metric_keys = _referenced(rows)
    lookups = _Lookups(
        releases={r["id"]: dict(r) for r in Release.objects.filter(id__in=release_ids).values("id", "markets")},
        metrics={m.key: m for m in MetricDefinition.objects.filter(key__in=metric_keys)},
        now=now or timezone.now(),
        datetimes={},
    )
    records: list[tuple[Any, ...]] = []
    bad: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], int] = {}
    for index, row in enumerate(rows):
        record = _fast_record(row, lookups)
        errors: dict[str, list[str]] = {}
        if record is None:
            record, errors = _checked_record(row, lookups)
        if record is not None:
            key = _natural_key(record)
            if key in seen:
                record, errors = None, {"non_field_errors": [f"Same {_KEY_LABEL} as row {seen[key]}."]}
            else:
                seen[key] = index
        if record is None:
            bad.append({"index": index, "errors": errors})
        elif not bad:  # once a row is bad nothing is written: keep only the errors
            records.append(record)
    if bad:
        raise InvalidRows(bad)
    return ValidSamples(records)


_KEY_LABEL = "(source, release, metric, market, arm, window_start)"


def _referenced(rows: Sequence[Any]) -> tuple[set[int], set[str]]:
    """The release ids and metric keys the rows name, in one pass (what the two lookups read)."""
    release_ids: set[int] = set()
    metric_keys: set[str] = set()
    for row in rows:
        if type(row) is not dict and not isinstance(row, Mapping):
            continue
        release = row.get("release")
        # A JSON integer, the senders' shape, without the call; anything else as _as_release_id judges it.
        if type(release) is int and 0 < release <= MAX_STORABLE_INT:
            release_ids.add(release)
        elif (release_id := _as_release_id(release)) is not None:
            release_ids.add(release_id)
        metric = row.get("metric")
        if isinstance(metric, str):
            metric_keys.add(metric)
    return release_ids, metric_keys


def validate_samples(rows: Sequence[Any], *, now: datetime | None = None) -> list[MetricSample]:
    """``validate_rows`` as unsaved model instances, for callers that want objects rather than tuples."""
    return validate_rows(rows, now=now).as_models()


def metric_samples_ingest(*, rows: Sequence[Any], enqueue: bool = True, now: datetime | None = None) -> IngestResult:
    """Validate and upsert ``rows`` (all or nothing). Re-sending a window updates it; re-sending it unchanged
    writes nothing (its ``received_at`` stays, so the evaluation sees no new data).

    Concurrent overlapping batches cannot deadlock on one another (rows are written in key order); if the database
    still aborts the transaction as a deadlock or serialization failure (another writer locking in another order,
    e.g. a CSV import), the whole transaction is retried a few times, then refused as ``IngestConflict`` (409),
    never a 500. After commit the touched releases are queued for evaluation; if the broker is down the samples
    stay stored and the every-minute beat cycle catches up. ``now`` is when they were received (the demo's
    history; default the clock).
    """
    samples = validate_rows(rows, now=now)
    # Inside a caller's transaction a retry cannot undo what that transaction already locked: one attempt only.
    attempts = 1 if transaction.get_connection().in_atomic_block else INGEST_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            with transaction.atomic():
                upsert_samples(samples)
            break
        except OperationalError as exc:
            if not _is_lock_conflict(exc):
                raise
            logger.warning("Ingest of %s rows hit %s (attempt %s/%s)", len(samples), exc.__cause__, attempt, attempts)
            if attempt == attempts:
                raise IngestConflict(
                    "Concurrent writes to the same samples conflicted; nothing was written. Retry the request."
                ) from exc
            time.sleep(random.uniform(0.01, 0.05) * attempt)  # jitter: the retries of two clients drift apart
    release_ids = samples.release_ids
    if enqueue and release_ids:
        transaction.on_commit(lambda: enqueue_evaluation(release_ids))
    return IngestResult(rows=len(samples), release_ids=release_ids)


def _is_lock_conflict(exc: OperationalError) -> bool:
    return isinstance(exc.__cause__, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure)


def upsert_samples(samples: ValidSamples | Iterable[MetricSample]) -> None:
    """Insert new rows and update changed ones, by natural key, in key order; unchanged rows are left alone.

    Rows go in the order of the unique key, so two overlapping batches lock their common rows in the same order:
    one waits for the other instead of each holding a row the other needs (a deadlock, which PostgreSQL resolves
    by aborting). Call it inside a transaction.
    """
    batch = samples if isinstance(samples, ValidSamples) else ValidSamples.from_models(samples)
    if not batch.rows:
        return
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        _upsert_postgresql(connection, batch.rows)
    else:
        _upsert_row_by_row(connection, batch.rows)


def _upsert_sql(connection: Any, source: str, *, with_clause: str = "") -> str:
    quote = connection.ops.quote_name
    table = quote(MetricSample._meta.db_table)
    columns = ", ".join(quote(column) for column in SAMPLE_COLUMNS)
    keys = ", ".join(quote(column) for column in KEY_COLUMNS)
    updates = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in SAMPLE_COLUMNS if c not in KEY_COLUMNS)
    if connection.vendor == "postgresql":
        stored = ", ".join(f"{table}.{quote(c)}" for c in COMPARED_COLUMNS)
        sent = ", ".join(f"EXCLUDED.{quote(c)}" for c in COMPARED_COLUMNS)
        changed = f"({stored}) IS DISTINCT FROM ({sent})"
    else:
        changed = " OR ".join(f"{table}.{quote(c)} IS NOT EXCLUDED.{quote(c)}" for c in COMPARED_COLUMNS)
    return (
        f"{with_clause}INSERT INTO {table} ({columns}) {source.format(columns=columns, keys=keys)} "
        f"ON CONFLICT ({keys}) DO UPDATE SET {updates} WHERE {changed}"
    )


def _upsert_postgresql(connection: Any, rows: list[tuple[Any, ...]]) -> None:
    # COPY streams the batch into a session-local staging table (no index, no WAL) at PostgreSQL's own pace; one
    # set-based INSERT … SELECT then moves it — emptying the staging table as it goes, so several batches in one
    # transaction (the CSV command) never see each other's rows — in key order.
    quote = connection.ops.quote_name
    staging = quote(STAGING_TABLE)
    columns = ", ".join(quote(column) for column in SAMPLE_COLUMNS)
    with connection.cursor() as cursor:
        table = quote(MetricSample._meta.db_table)
        # Only quoted names from the model go into these statements, never input.
        shape = f"SELECT {columns} FROM {table} WITH NO DATA"  # noqa: S608
        cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS {shape}")
        with cursor.copy(f"COPY {staging} ({columns}) FROM STDIN") as copy:
            copy.write(_copy_text(rows))
        cursor.execute(
            _upsert_sql(
                connection,
                "SELECT {columns} FROM staged ORDER BY {keys}",
                with_clause=f"WITH staged AS (DELETE FROM {staging} RETURNING *) ",  # noqa: S608
            )
        )


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(rows: list[tuple[Any, ...]]) -> str:
    """The rows in COPY's text format. Half the time of psycopg's ``write_row`` per row: the few distinct strings
    and date-times of a batch (sources, markets, arms, window bounds) are rendered once; numbers are not cached,
    as 1 and 1.0 are equal keys but a bigint column refuses "1.0"."""
    rendered: dict[Any, str] = {}

    def render(value: Any) -> str:
        # A datetime is aware: its isoformat() carries the offset.
        text = value.translate(_COPY_ESCAPES) if type(value) is str else value.isoformat()
        rendered[value] = text
        return text

    lines = []
    for row in rows:
        cells = []
        for value in row:
            kind = type(value)
            if value is None:
                cells.append("\\N")
            elif kind is int:
                cells.append(str(value))
            elif kind is float:
                cells.append(repr(value))
            else:
                cells.append(rendered.get(value) or render(value))
        lines.append("\t".join(cells))
    lines.append("")
    return "\n".join(lines)


def _upsert_row_by_row(connection: Any, rows: list[tuple[Any, ...]]) -> None:
    # The embedded SQLite default (``make run``): the same upsert, one row at a time in key order, with values
    # adapted the way the ORM stores them.
    ops = connection.ops
    datetime_positions = [SAMPLE_COLUMNS.index(c) for c in ("window_start", "window_end", "received_at")]

    def adapted(row: tuple[Any, ...]) -> list[Any]:
        values = list(row)
        for position in datetime_positions:
            values[position] = ops.adapt_datetimefield_value(values[position])
        return values

    placeholders = ", ".join(["%s"] * len(SAMPLE_COLUMNS))
    ordered = sorted(rows, key=_natural_key)
    with connection.cursor() as cursor:
        cursor.executemany(_upsert_sql(connection, f"VALUES ({placeholders})"), [adapted(row) for row in ordered])


def enqueue_evaluation(release_ids: Sequence[int]) -> bool:
    from ..tasks import evaluate_releases

    try:
        evaluate_releases.delay(list(release_ids))
    except Exception:  # the broker's error types vary by transport; none of them may lose the samples
        logger.warning(
            "Could not enqueue evaluation of releases %s; the beat cycle will evaluate them.",
            list(release_ids),
            exc_info=True,
        )
        return False
    return True
